; C definitions. A declarator may wrap the function's name in pointers (`int **f(void)`); two
; levels are covered. Forward declarations (`struct s;`) are not definitions. Function prototypes
; are captured `@bodiless`: a header's prototypes (and their doc comments) are its API, while a
; prototype in a file that also defines the function is dropped (symbols.py).

(function_definition
  declarator: (function_declarator
    declarator: (identifier) @name)) @definition.function

(function_definition
  declarator: (_
    (function_declarator
      declarator: (identifier) @name))) @definition.function

(function_definition
  declarator: (_
    (_
      (function_declarator
        declarator: (identifier) @name)))) @definition.function

(struct_specifier
  name: (type_identifier) @name
  body: (field_declaration_list)) @definition.struct

(union_specifier
  name: (type_identifier) @name
  body: (field_declaration_list)) @definition.struct

(enum_specifier
  name: (type_identifier) @name
  body: (enumerator_list)) @definition.enum

(type_definition
  declarator: (type_identifier) @name) @definition.type

; typedef struct s *s_ptr; typedef int row[4];
(type_definition
  declarator: (_
    declarator: (type_identifier) @name)) @definition.type

; typedef int (*handler)(int);
(type_definition
  declarator: (function_declarator
    declarator: (parenthesized_declarator
      (pointer_declarator
        declarator: (type_identifier) @name)))) @definition.type

; #define MAX(a, b) ...
(preproc_function_def
  name: (identifier) @name) @definition.macro

; int add(int a, int b);  char *dup(const char *s);
(declaration
  declarator: (function_declarator
    declarator: (identifier) @name)) @definition.function @bodiless

(declaration
  declarator: (_
    (function_declarator
      declarator: (identifier) @name))) @definition.function @bodiless

; inherits: c
; C++ adds classes, namespaces and member functions to the C query. A name written `A::b` is split
; in symbols.py: the scope becomes the parent, so out-of-class definitions read "A.b".

; member and out-of-class function names; plain identifiers are covered by c.scm
(function_definition
  declarator: (function_declarator
    declarator: [
      (field_identifier) @name
      (qualified_identifier) @name
      (destructor_name) @name
      (operator_name) @name
      (template_function name: (identifier) @name)
    ])) @definition.function

; int& A::ref(), Node* Tree::find(...)
(function_definition
  declarator: (_
    (function_declarator
      declarator: [
        (field_identifier) @name
        (qualified_identifier) @name
        (operator_name) @name
        (template_function name: (identifier) @name)
      ]))) @definition.function

(class_specifier
  name: (type_identifier) @name
  body: (field_declaration_list)) @definition.class

; template specializations: class Box<int> { ... }
(class_specifier
  name: (template_type name: (type_identifier) @name)
  body: (field_declaration_list)) @definition.class

(struct_specifier
  name: (template_type name: (type_identifier) @name)
  body: (field_declaration_list)) @definition.struct

; using Alias = int;
(alias_declaration
  name: (type_identifier) @name) @definition.type

(namespace_definition
  name: [(namespace_identifier) (nested_namespace_specifier)] @name) @definition.namespace

(concept_definition
  name: (identifier) @name) @definition.type

; member functions declared in the class and defined elsewhere: class K { void f(); };
(field_declaration
  declarator: (function_declarator
    declarator: [
      (field_identifier) @name
      (operator_name) @name
      (destructor_name) @name
    ])) @definition.function @bodiless

(declaration
  declarator: (function_declarator
    declarator: [
      (qualified_identifier) @name
      (destructor_name) @name
      (operator_name) @name
    ])) @definition.function @bodiless

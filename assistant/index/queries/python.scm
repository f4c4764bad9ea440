; Python definitions. `async def` is a function_definition too; a function directly inside a
; class body becomes a method in symbols.py. Decorators are picked up from decorated_definition.

(class_definition
  name: (identifier) @name) @definition.class

(function_definition
  name: (identifier) @name) @definition.function

; Module-level constants: UPPER_CASE names only, with or without an annotation.
(module
  (expression_statement
    (assignment
      left: (identifier) @name) @definition.constant)
  (#match? @name "^_*[A-Z][A-Z0-9_]*$"))

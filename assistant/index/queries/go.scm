; Go definitions. A method's owner is its receiver type, captured as @scope because the method is
; not written inside the type. Single-spec `type`/`const`/`var` declarations are widened to the
; whole declaration in symbols.py, so `type X struct` keeps its keyword.

(function_declaration
  name: (identifier) @name) @definition.function

; func (c *Context) JSON(...): receiver type without `*` and without type arguments
(method_declaration
  receiver: (parameter_list
    (parameter_declaration
      type: [
        (type_identifier) @scope
        (pointer_type (type_identifier) @scope)
        (generic_type type: (type_identifier) @scope)
        (pointer_type (generic_type type: (type_identifier) @scope))
      ]))
  name: (field_identifier) @name) @definition.method

(type_spec
  name: (type_identifier) @name
  type: (struct_type)) @definition.struct

(type_spec
  name: (type_identifier) @name
  type: (interface_type)) @definition.interface

; any other named type; a type_spec matched by an earlier pattern keeps that pattern's kind
(type_spec
  name: (type_identifier) @name) @definition.type

; type A = B
(type_alias
  name: (type_identifier) @name) @definition.type

; package-level const and var, alone or in a ( ... ) block; `const a, b = 1, 2` defines both
(source_file
  (const_declaration
    (const_spec
      name: (identifier) @name
      ("," name: (identifier) @name)*) @definition.constant))

(source_file
  (var_declaration
    (var_spec
      name: (identifier) @name
      ("," name: (identifier) @name)*) @definition.constant))

(source_file
  (var_declaration
    (var_spec_list
      (var_spec
        name: (identifier) @name
        ("," name: (identifier) @name)*) @definition.constant)))

; inherits: ecmascript
; JavaScript definitions beyond the shared ones (ecmascript.scm): classes and class fields.

(class_declaration
  name: (identifier) @name) @definition.class

; class fields holding a function: `handle = () => {}`
(field_definition
  property: [(property_identifier) (private_property_identifier)] @name
  value: [(arrow_function) (function_expression) (generator_function)]) @definition.method

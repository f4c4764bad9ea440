; inherits: ecmascript
; TypeScript definitions beyond the shared ones (ecmascript.scm), including the bodiless ones of
; `.d.ts` files and `declare` blocks.

; overloads and ambient functions: `declare function f(a: string): void;`
(function_signature
  name: (identifier) @name) @definition.function

(class_declaration
  name: (type_identifier) @name) @definition.class

(abstract_class_declaration
  name: (type_identifier) @name) @definition.class

(interface_declaration
  name: (type_identifier) @name) @definition.interface

(type_alias_declaration
  name: (type_identifier) @name) @definition.type

(enum_declaration
  name: (identifier) @name) @definition.enum

; namespace N {} and declare namespace N {}
(internal_module
  name: [(identifier) (nested_identifier)] @name) @definition.namespace

; declare module "name" {}
(module
  name: [(string) (identifier) (nested_identifier)] @name) @definition.module

; bodiless methods in interfaces, declared classes and overloads
(method_signature
  name: [(property_identifier) (private_property_identifier) (string)] @name) @definition.method

(abstract_method_signature
  name: [(property_identifier) (private_property_identifier) (string)] @name) @definition.method

; class fields holding a function: `handle = () => {}`
(public_field_definition
  name: [(property_identifier) (private_property_identifier)] @name
  value: [(arrow_function) (function_expression) (generator_function)]) @definition.method

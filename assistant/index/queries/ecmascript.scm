; Definitions JavaScript and TypeScript write the same way (both grammars name these nodes
; alike); javascript.scm and typescript.scm inherit this file. Not a language of its own.
; Methods are kind "method" wherever they appear; functions assigned to a name are kind
; "function" and take their name from the binding. The first pattern that matches a node wins.

(function_declaration
  name: (identifier) @name) @definition.function

(generator_function_declaration
  name: (identifier) @name) @definition.function

(method_definition
  name: [(property_identifier) (private_property_identifier) (string)] @name) @definition.method

; const f = () => {}, let g = function () {}, var h = function* () {}
(variable_declarator
  name: (identifier) @name
  value: [(arrow_function) (function_expression) (generator_function)]) @definition.function

; object literal members: { get: () => {}, put: function () {} }
(pair
  key: [(property_identifier) (string)] @name
  value: [(arrow_function) (function_expression) (generator_function)]) @definition.function

; exports.x = function () {}
(assignment_expression
  left: (member_expression
    object: (identifier) @_exports
    property: (property_identifier) @name)
  right: [(arrow_function) (function_expression) (generator_function)]
  (#eq? @_exports "exports")) @definition.function

; module.exports.x = () => {}
(assignment_expression
  left: (member_expression
    object: (member_expression
      object: (identifier) @_module
      property: (property_identifier) @_exports)
    property: (property_identifier) @name)
  right: [(arrow_function) (function_expression) (generator_function)]
  (#eq? @_module "module")
  (#eq? @_exports "exports")) @definition.function

; module.exports = function createApplication() {}: named by the function
(assignment_expression
  left: (member_expression
    object: (identifier) @_module
    property: (property_identifier) @_exports)
  right: [
    (function_expression name: (identifier) @name)
    (generator_function name: (identifier) @name)
  ]
  (#eq? @_module "module")
  (#eq? @_exports "exports")) @definition.function

; Foo.prototype.bar = function () {}: the method bar of Foo
(assignment_expression
  left: (member_expression
    object: (member_expression
      object: (identifier) @scope
      property: (property_identifier) @_prototype)
    property: (property_identifier) @name)
  right: [(arrow_function) (function_expression) (generator_function)]
  (#eq? @_prototype "prototype")) @definition.function

; res.send = function send() {}, app.get = async () => {}: the method send of res
(assignment_expression
  left: (member_expression
    object: (identifier) @scope
    property: (property_identifier) @name)
  right: [(arrow_function) (function_expression) (generator_function)]
  (#not-eq? @scope "module")) @definition.function

; Ruby definitions. Every `def` is a method, including top-level ones (they land on Object).

(class
  name: [(constant) (scope_resolution)] @name) @definition.class

(module
  name: [(constant) (scope_resolution)] @name) @definition.module

(method
  name: (_) @name) @definition.method

; def self.create
(singleton_method
  name: (_) @name) @definition.method

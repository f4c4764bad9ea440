; inherits: typescript
; TSX is TypeScript plus JSX, which adds no definitions of its own.

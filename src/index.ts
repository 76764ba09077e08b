// The public surface of wpipe (DESIGN.md "Public API"): exports only.
export { Codes, TaskError, ProcessError, ApiError, ExpressionError, WpipeError } from './errors.js';

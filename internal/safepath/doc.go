// Package safepath builds file paths from external strings (host names,
// branch and repository names, anything a push or a request brings) so
// that the result always stays under its root: one element, never empty,
// ".", "..", a path separator or a NUL byte, and the joined path is checked
// to be inside root after cleaning.
package safepath

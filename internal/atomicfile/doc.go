// Package atomicfile replaces small state files so that a crash at any
// moment leaves either the old contents or the new ones.
package atomicfile

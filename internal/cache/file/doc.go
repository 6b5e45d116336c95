// Package file keeps a binary cache in a local directory, the layout Nix's
// file:// store uses, so that the directory can be served over HTTP as a
// substituter. Every write goes to a temporary file in the same directory
// and is renamed into place, so a reader or a crash never sees half an object.
package file

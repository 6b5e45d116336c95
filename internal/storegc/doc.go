// Package storegc keeps the builder's own Nix store to what the binary
// cache's retention keeps plus what running builds need.
//
// SyncRoots makes the builder's garbage-collector root directory hold one
// root per retained closure that the store has (the roots the pipeline
// adds per host go once their closure leaves the retention), and Collector
// runs nix-store --gc on a schedule and whenever the free space of the
// store's file system falls below MinFree, then freeing until MaxFree is
// free (Nix's min-free/max-free, through --max-freed).
//
// A Gate keeps collections and builds apart: the pipeline holds it shared
// from an evaluation's first instantiated derivation to its last push
// (derivations and fresh outputs are not rooted in between), and a
// collection holds it exclusively while it syncs the roots and collects.
// A collection waiting for the gate holds back builds that ask after it,
// so a busy builder cannot starve it.
package storegc

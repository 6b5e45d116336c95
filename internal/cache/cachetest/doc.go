// Package cachetest is the contract every cache.Backend must pass. Each
// implementation's tests call TestBackend with a constructor of empty
// backends.
package cachetest

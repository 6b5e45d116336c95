// Package clitest checks the flag schemas programs print with -flags-json
// against the copies committed for the NixOS modules.
package clitest

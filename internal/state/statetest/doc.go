// Package statetest is the contract every state.Interface implementation
// keeps. Each implementation's tests call Run with a way to make empty
// databases and open stores on them.
package statetest

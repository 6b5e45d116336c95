// Package secretfile reads secrets (tokens, passwords, credentials) from
// the files that hold them: the one reader every program and package uses,
// so that every secret file is held to the same rules. Surrounding white
// space is dropped; a missing, empty or white-space-only file is an error;
// errors name the file and what it holds, never its contents.
package secretfile

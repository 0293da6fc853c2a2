package certs

import "regexp"

// tokenLike matches what looks like a join token of any format version,
// complete or not, in either case: "nbd", a version number, an optional
// letter (the kind of token), "_" and what
// follows up to a character no token holds.
var tokenLike = regexp.MustCompile(`(?i)nbd[0-9]+[a-z]?_[a-z0-9]*`)

// Redacted stands in for a token that Redact removed.
const Redacted = "nbd2_(redacted)"

// Redact replaces everything in s that looks like a join token with
// Redacted, for text that may quote what a user typed: diagnostics of a
// configuration file, say. A token never appears in output.
func Redact(s string) string { return tokenLike.ReplaceAllString(s, Redacted) }

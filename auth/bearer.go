package auth

import "strings"

// BearerSecret returns the token of an Authorization header value
// "Bearer <token>". The scheme is matched case-insensitively (RFC 7235
// §2.1: "bearer x" and "BEARER x" are the same credentials) and may be
// followed by more than one space; ok is false for another scheme or an
// empty token.
func BearerSecret(header string) (secret string, ok bool) {
	const scheme = "bearer"
	if len(header) <= len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) {
		return "", false
	}
	rest := header[len(scheme):]
	if rest[0] != ' ' && rest[0] != '\t' {
		return "", false // "Bearerx", "Bearer-x": another scheme
	}
	secret = strings.TrimSpace(rest)
	return secret, secret != ""
}

package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/maypok86/otter/v2"
)

// cookieName is the session cookie. It holds an opaque random session id;
// the token itself stays on the server, in memory (see docs/console.md:
// behind a load balancer with several api processes, sessions need sticky
// routing or a sign-in per process).
const cookieName = "tm_console"

// session is one signed-in browser. secret is the bearer token the
// console sends to the API for it ("" before sign-in and with TM_AUTH=off);
// csrf is the synchronizer token every state-changing form carries.
type session struct {
	secret  string
	csrf    string
	created time.Time

	mu       sync.Mutex
	flash    string
	rollouts []string // ids of the rollouts started in this session, newest first
}

// startedRollout remembers a rollout this session started (the API lists
// none), keeping the newest 20.
func (s *session) startedRollout(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollouts = append([]string{id}, s.rollouts...)
	if len(s.rollouts) > 20 {
		s.rollouts = s.rollouts[:20]
	}
}

func (s *session) startedRollouts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rollouts...)
}

// takeFlash returns and clears the message of the last action.
func (s *session) takeFlash() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.flash
	s.flash = ""
	return f
}

func (s *session) setFlash(msg string) {
	s.mu.Lock()
	s.flash = msg
	s.mu.Unlock()
}

// sessions are kept in memory, keyed by the SHA-256 of the cookie value,
// dropped after idle time without use and after max in any case.
type sessions struct {
	max   time.Duration
	cache *otter.Cache[string, *session]
}

func newSessions(idle, max time.Duration) *sessions {
	return &sessions{max: max, cache: otter.Must(&otter.Options[string, *session]{
		MaximumSize:      100_000,
		ExpiryCalculator: otter.ExpiryAccessing[string, *session](idle),
	})}
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func sessionKey(id string) string {
	h := sha256.Sum256([]byte(id))
	return string(h[:])
}

// create stores a new session and returns its id (the cookie value).
func (ss *sessions) create(secret string) (string, *session) {
	id := randomToken()
	s := &session{secret: secret, csrf: randomToken(), created: time.Now()}
	ss.cache.Set(sessionKey(id), s)
	return id, s
}

func (ss *sessions) get(id string) *session {
	if id == "" {
		return nil
	}
	s, ok := ss.cache.GetIfPresent(sessionKey(id))
	if !ok {
		return nil
	}
	if time.Since(s.created) > ss.max {
		ss.cache.Invalidate(sessionKey(id))
		return nil
	}
	return s
}

func (ss *sessions) drop(id string) {
	if id != "" {
		ss.cache.Invalidate(sessionKey(id))
	}
}

// current returns the request's session, or nil.
func (c *Console) current(g *gin.Context) (string, *session) {
	id, err := g.Cookie(cookieName)
	if err != nil {
		return "", nil
	}
	return id, c.sessions.get(id)
}

// secure reports whether the browser reached us over TLS, so the cookie
// may be marked Secure (a Secure cookie set over plain HTTP is dropped).
func (c *Console) secure(r *http.Request) bool {
	return r.TLS != nil || (c.o.TrustForwardedProto && r.Header.Get("X-Forwarded-Proto") == "https")
}

// setCookie sends the session id: HttpOnly (no script reads it),
// SameSite=Strict (no other site's page sends it), Secure over TLS, for
// /ui/ only.
func (c *Console) setCookie(g *gin.Context, id string, maxAge int) {
	http.SetCookie(g.Writer, &http.Cookie{
		Name: cookieName, Value: id, Path: "/ui/", MaxAge: maxAge,
		HttpOnly: true, Secure: c.secure(g.Request), SameSite: http.SameSiteStrictMode,
	})
}

// startSession replaces any session of the browser with a new one (a new
// id at sign-in, so an id planted before it is worthless).
func (c *Console) startSession(g *gin.Context, secret string) *session {
	old, _ := c.current(g)
	c.sessions.drop(old)
	id, s := c.sessions.create(secret)
	c.setCookie(g, id, int(c.o.SessionMax.Seconds()))
	return s
}

// csrfOK checks the form's csrf field against the session's token in
// constant time.
func csrfOK(g *gin.Context, s *session) bool {
	got := g.PostForm("csrf")
	return s != nil && got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

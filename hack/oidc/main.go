// Command oidc-provider is the OpenID Connect provider of modelgate's local
// control plane (hack/cluster.sh). It is zitadel's example provider, login
// page and in-memory storage included, with our users and clients, and with
// the claims that kube-apiserver maps to a user name and groups in every ID
// token.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

const (
	consoleClient      = "modelgate-console"
	shortConsoleClient = "modelgate-console-short"
	consoleSecret      = "modelgate-console-secret"
)

// The console under test listens on random loopback ports.
var (
	redirectGlobs   = []string{"http://127.0.0.1:*/callback", "http://localhost:*/callback"}
	postLogoutGlobs = []string{"http://127.0.0.1:*/", "http://localhost:*/", "http://127.0.0.1:*/*", "http://localhost:*/*"}
)

// user is one entry of users.json.
type user struct {
	Username string   `json:"username"`
	Password string   `json:"password"`
	Groups   []string `json:"groups"`
}

// userStore is the example storage's view of our users; a user's ID, and so
// the subject of its tokens, is the username.
type userStore map[string]*storage.User

func (u userStore) GetUserByID(id string) *storage.User         { return u[id] }
func (u userStore) GetUserByUsername(name string) *storage.User { return u[name] }
func (userStore) ExampleClientID() string                       { return storage.ServiceUserID }

var _ storage.UserStore = userStore(nil)

// provider is the example storage with our claims and client settings.
type provider struct {
	*storage.Storage
	users         userStore
	groups        map[string][]string
	shortLifetime time.Duration
}

// SetUserinfoFromRequest is what the provider calls last when it fills the
// claims of an ID token. The example only adds profile and email claims when
// a client asks for them to be asserted in the ID token; kube-apiserver needs
// them in every token, so they are added whenever the openid scope is there.
func (p *provider) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := p.Storage.SetUserinfoFromRequest(ctx, info, req, scopes); err != nil {
		return err
	}
	if slices.Contains(scopes, oidc.ScopeOpenID) {
		p.addClaims(info, req.GetSubject())
	}
	return nil
}

// SetUserinfoFromToken serves the userinfo endpoint; it gives the same claims
// as the ID token.
func (p *provider) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, origin string) error {
	if err := p.Storage.SetUserinfoFromToken(ctx, info, tokenID, subject, origin); err != nil {
		return err
	}
	p.addClaims(info, info.Subject)
	return nil
}

func (p *provider) addClaims(info *oidc.UserInfo, userID string) {
	u := p.users[userID]
	if u == nil {
		return
	}
	info.PreferredUsername = u.Username
	info.Email = u.Email
	info.EmailVerified = oidc.Bool(u.EmailVerified)
	// Always an array, even when empty: the API server's groups claim.
	info.AppendClaims("groups", append([]string{}, p.groups[userID]...))
}

// GetClientByClientID wraps the example's client in ours.
func (p *provider) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := p.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	lifetime := c.IDTokenLifetime()
	if id == shortConsoleClient {
		lifetime = p.shortLifetime
	}
	return client{c, lifetime}, nil
}

// client sets what the example's clients cannot be given from outside their
// package: the redirect globs and the lifetime of ID tokens.
type client struct {
	op.Client
	idTokenLifetime time.Duration
}

var _ op.HasRedirectGlobs = client{}

func (c client) IDTokenLifetime() time.Duration     { return c.idTokenLifetime }
func (client) RedirectURIs() []string               { return nil } // only the globs
func (client) RedirectURIGlobs() []string           { return redirectGlobs }
func (client) PostLogoutRedirectURIGlobs() []string { return postLogoutGlobs }

func loadUsers(path string) (userStore, map[string][]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var list []user
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, nil, err
	}
	users, groups := userStore{}, map[string][]string{}
	for _, u := range list {
		users[u.Username] = &storage.User{
			ID:                u.Username,
			Username:          u.Username,
			Password:          u.Password,
			FirstName:         u.Username,
			LastName:          "Example",
			Email:             u.Username + "@example.com",
			EmailVerified:     true,
			PreferredLanguage: language.English,
		}
		groups[u.Username] = u.Groups
	}
	return users, groups, nil
}

func main() {
	issuer := flag.String("issuer", "https://127.0.0.1:9998", "issuer URL, without a trailing slash: kube-apiserver wants https and an exact match with the tokens' iss")
	listen := flag.String("listen", "", "address to listen on (default: the issuer's host and port)")
	tlsCert := flag.String("tls-cert", "", "serving certificate (PEM)")
	tlsKey := flag.String("tls-key", "", "key of the serving certificate (PEM)")
	usersFile := flag.String("users", "users.json", "users: [{username, password, groups}]")
	shortLifetime := flag.Duration("short-lifetime", 15*time.Second, "lifetime of the ID tokens of "+shortConsoleClient)
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	fail := func(msg string, err error) {
		logger.Error(msg, "error", err)
		os.Exit(1)
	}
	if strings.HasSuffix(*issuer, "/") {
		fail("bad issuer", errors.New("no trailing slash: kube-apiserver compares it with the tokens' iss"))
	}
	addr := *listen
	if addr == "" {
		u, err := url.Parse(*issuer)
		if err != nil {
			fail("bad issuer", err)
		}
		addr = u.Host
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		fail("bad listen address", err)
	}

	users, groups, err := loadUsers(*usersFile)
	if err != nil {
		fail("cannot read users", err)
	}
	// The example's storage takes its clients from this registry when it is
	// created.
	storage.RegisterClients(
		storage.WebClient(consoleClient, consoleSecret),
		storage.WebClient(shortConsoleClient, consoleSecret),
	)
	p := &provider{storage.NewStorage(users), users, groups, *shortLifetime}

	server := &http.Server{
		Addr:              addr,
		Handler:           exampleop.SetupServer(*issuer, p, logger, false),
		ReadHeaderTimeout: 10 * time.Second,
	}
	logger.Info("serving", "issuer", *issuer, "addr", addr, "users", len(users))
	if err := server.ListenAndServeTLS(*tlsCert, *tlsKey); err != nil {
		fail("server stopped", err)
	}
}

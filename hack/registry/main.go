// Command registry is the OCI registry of modelgate's local control plane
// (hack/cluster.sh): go-containerregistry's registry, in memory, with the
// OCI 1.1 referrers API on, served over TLS with a certificate of the
// cluster's CA on loopback.
//
// It adds what that library leaves to its callers and what modelgate's
// approvals rely on, since an approval names a manifest digest:
//   - a manifest pushed by digest must have that digest, be JSON whose
//     mediaType (when it has one) is its Content-Type, and name only blobs
//     the registry holds, at their size: a digest always pins bytes that
//     can be fetched;
//   - a manifest pushed with a subject is answered with OCI-Subject, so
//     clients list referrers through the referrers API, not a fallback tag;
//   - a referrer's artifactType is the manifest's own (the library reports
//     its config's media type), the list can be filtered by artifactType,
//     and a subject without referrers has an empty list, never a 404.
//
// GET /_modelgate/requests?prefix=/v2/REPOSITORY/ answers how many requests
// had a path starting with the prefix, so that tests and the benchmark
// count what the operator asks of a registry.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

const (
	// The OCI distribution spec asks registries to accept manifests of at
	// least 4 MiB; a larger one is refused before it is read.
	maxManifest = 4 << 20
	indexType   = "application/vnd.oci.image.index.v1+json"
)

// descriptor is an OCI content descriptor.
type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// manifest holds the fields of an image manifest or an index this server reads.
type manifest struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Config       *descriptor       `json:"config"`
	Layers       []descriptor      `json:"layers"`
	Subject      *descriptor       `json:"subject"`
	Annotations  map[string]string `json:"annotations"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

// route is /v2/<name>/<kind>/<ref>, where the name may hold slashes.
type route struct{ name, kind, ref string }

func parseRoute(path string) (route, bool) {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return route{}, false
	}
	parts := strings.Split(rest, "/")
	n := len(parts)
	if n < 3 {
		return route{}, false
	}
	return route{name: strings.Join(parts[:n-2], "/"), kind: parts[n-2], ref: parts[n-1]}, true
}

type server struct {
	inner http.Handler
	log   *log.Logger

	mu     sync.Mutex
	counts map[string]int
}

// count answers the requests so far whose path starts with ?prefix=.
func (s *server) count(w http.ResponseWriter, r *http.Request) {
	prefix := r.URL.Query().Get("prefix")
	s.mu.Lock()
	n := 0
	for path, c := range s.counts {
		if strings.HasPrefix(path, prefix) {
			n += c
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, "{\"requests\":%d}\n", n)
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_modelgate/requests" {
		s.count(w, r)
		return
	}
	s.mu.Lock()
	s.counts[r.URL.Path]++
	s.mu.Unlock()
	rt, ok := parseRoute(r.URL.Path)
	switch {
	case ok && rt.kind == "manifests" && r.Method == http.MethodPut:
		s.putManifest(w, r, rt)
	case ok && rt.kind == "referrers" && r.Method == http.MethodGet:
		s.referrers(w, r, rt)
	default:
		s.inner.ServeHTTP(w, r)
	}
}

// call asks the library's handler, in process.
func (s *server) call(ctx context.Context, method, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req, err := http.NewRequestWithContext(ctx, method, path, nil)
	if err != nil {
		rec.WriteHeader(http.StatusBadRequest)
		return rec
	}
	s.inner.ServeHTTP(rec, req)
	return rec
}

func ociError(w http.ResponseWriter, status int, code, message string) {
	body, _ := json.Marshal(map[string]any{
		"errors": []map[string]string{{"code": code, "message": message}},
	})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func isDigest(ref string) bool { return strings.Contains(ref, ":") }

func (s *server) putManifest(w http.ResponseWriter, r *http.Request, rt route) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifest+1))
	if err != nil {
		ociError(w, http.StatusBadRequest, "MANIFEST_INVALID", err.Error())
		return
	}
	if len(body) > maxManifest {
		ociError(w, http.StatusRequestEntityTooLarge, "SIZE_INVALID", fmt.Sprintf("a manifest may hold at most %d bytes", maxManifest))
		return
	}
	sum := sha256.Sum256(body)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if isDigest(rt.ref) && rt.ref != digest {
		s.log.Printf("refused PUT %s: the manifest's digest is %s", r.URL.Path, digest)
		ociError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("the manifest's digest is %s, not %s", digest, rt.ref))
		return
	}
	var m manifest
	if err := json.Unmarshal(body, &m); err != nil {
		ociError(w, http.StatusBadRequest, "MANIFEST_INVALID", "the manifest is not JSON: "+err.Error())
		return
	}
	if code, msg := s.checkManifest(r, rt, m); code != "" {
		s.log.Printf("refused PUT %s: %s", r.URL.Path, msg)
		ociError(w, http.StatusBadRequest, code, msg)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	rec := httptest.NewRecorder()
	s.inner.ServeHTTP(rec, r)
	if rec.Code == http.StatusCreated && m.Subject != nil {
		rec.Header().Set("OCI-Subject", m.Subject.Digest)
	}
	copyResponse(w, rec)
}

// checkManifest returns an OCI error code and message for a manifest that
// does not describe what it claims, or "" when it does.
func (s *server) checkManifest(r *http.Request, rt route, m manifest) (string, string) {
	contentType := r.Header.Get("Content-Type")
	if m.MediaType != "" && m.MediaType != contentType {
		return "MANIFEST_INVALID", fmt.Sprintf("the manifest's mediaType is %s, its Content-Type %s", m.MediaType, contentType)
	}
	blobs := slices.Clone(m.Layers)
	if m.Config != nil {
		blobs = append(blobs, *m.Config)
	}
	for _, b := range blobs {
		if !isDigest(b.Digest) {
			return "MANIFEST_INVALID", fmt.Sprintf("a descriptor has no digest: %q", b.Digest)
		}
		rec := s.call(r.Context(), http.MethodHead, "/v2/"+rt.name+"/blobs/"+b.Digest)
		if rec.Code != http.StatusOK {
			return "MANIFEST_BLOB_UNKNOWN", fmt.Sprintf("blob %s is not in the registry", b.Digest)
		}
		if size, err := strconv.ParseInt(rec.Header().Get("Content-Length"), 10, 64); err == nil && size != b.Size {
			return "MANIFEST_INVALID", fmt.Sprintf("blob %s has %d bytes, the manifest says %d", b.Digest, size, b.Size)
		}
	}
	return "", ""
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// referrers lists the manifests whose subject is rt.ref, with each one's
// own artifactType, filtered by the artifactType query parameters.
func (s *server) referrers(w http.ResponseWriter, r *http.Request, rt route) {
	rec := s.call(r.Context(), http.MethodGet, r.URL.Path)
	list := index{SchemaVersion: 2, MediaType: indexType, Manifests: []descriptor{}}
	switch rec.Code {
	case http.StatusOK:
		if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
			ociError(w, http.StatusInternalServerError, "UNKNOWN", "the referrers list: "+err.Error())
			return
		}
	case http.StatusNotFound:
		// An unknown repository: its subject has no referrers.
	default:
		copyResponse(w, rec)
		return
	}
	wanted := r.URL.Query()["artifactType"]
	kept := []descriptor{}
	for _, d := range list.Manifests {
		d.ArtifactType = s.artifactType(r.Context(), rt.name, d)
		if len(wanted) == 0 || slices.Contains(wanted, d.ArtifactType) {
			kept = append(kept, d)
		}
	}
	slices.SortFunc(kept, func(a, b descriptor) int { return strings.Compare(a.Digest, b.Digest) })
	list.Manifests = kept
	body, _ := json.Marshal(list)
	if len(wanted) > 0 {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Header().Set("Content-Type", indexType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// artifactType is the manifest's artifactType, or else its config's media type.
func (s *server) artifactType(ctx context.Context, name string, d descriptor) string {
	rec := s.call(ctx, http.MethodGet, "/v2/"+name+"/manifests/"+d.Digest)
	var m manifest
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &m) != nil {
		return d.ArtifactType
	}
	if m.ArtifactType != "" {
		return m.ArtifactType
	}
	if m.Config != nil {
		return m.Config.MediaType
	}
	return d.ArtifactType
}

func main() {
	listen := flag.String("listen", "127.0.0.1:16643", "address to listen on")
	tlsCert := flag.String("tls-cert", "", "serving certificate (PEM)")
	tlsKey := flag.String("tls-key", "", "key of the serving certificate (PEM)")
	flag.Parse()
	if *tlsCert == "" || *tlsKey == "" {
		log.Fatal("--tls-cert and --tls-key are required: the registry serves only TLS")
	}
	logger := log.New(os.Stderr, "", log.LstdFlags)
	s := &server{
		inner:  registry.New(registry.WithReferrersSupport(true), registry.Logger(logger)),
		log:    logger,
		counts: map[string]int{},
	}
	srv := &http.Server{Addr: *listen, Handler: s, ReadHeaderTimeout: 10 * time.Second}
	logger.Printf("serving the OCI distribution API on https://%s", *listen)
	log.Fatal(srv.ListenAndServeTLS(*tlsCert, *tlsKey))
}

package clusterstate

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/nomad/api"
)

// A read that a server answers with 500 (its connection to the leader
// being replaced) is tried again, a bounded number of times; other errors
// are not.
func TestNomadVarsReadRetries(t *testing.T) {
	tests := []struct {
		name     string
		failures int
		code     int
		wantErr  string
		wantHits int32
	}{
		{"answered at once", 0, 0, "", 1},
		{"two 500s, then answered", 2, http.StatusInternalServerError, "", 3},
		{"500 every time", 10, http.StatusInternalServerError, "rpc error: EOF", attempts},
		{"403 is not tried again", 10, http.StatusForbidden, "Permission denied", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n := hits.Add(1); int(n) <= tt.failures {
					msg := map[int]string{http.StatusInternalServerError: "rpc error: EOF", http.StatusForbidden: "Permission denied"}[tt.code]
					http.Error(w, msg, tt.code)
					return
				}
				w.Header().Set("X-Nomad-Index", "7")
				w.Write([]byte(`{"Namespace":"default","Path":"nomad-bootstrapd/cluster","Items":{"state":"{}"},"ModifyIndex":7}`))
			}))
			defer srv.Close()
			c, err := api.NewClient(&api.Config{Address: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			items, index, err := NomadVars(c, "secret").Read(context.Background(), VarPath)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Read = %v, %v; want an error with %q", items, err, tt.wantErr)
				}
			} else if err != nil || index != 7 || items["state"] != "{}" {
				t.Fatalf("Read = %v, %d, %v", items, index, err)
			}
			if hits.Load() != tt.wantHits {
				t.Errorf("%d requests; want %d", hits.Load(), tt.wantHits)
			}
		})
	}
}

// A write that a server answers with 500 is made again; one whose index is
// stale is a conflict, which Update answers by reading again.
func TestNomadVarsWriteRetries(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n := hits.Add(1); {
		case n == 1:
			http.Error(w, "rpc error: EOF", http.StatusInternalServerError)
		case r.URL.Query().Get("cas") != "7":
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"Namespace":"default","Path":"nomad-bootstrapd/cluster","ModifyIndex":9}`))
		default:
			w.Write([]byte(`{"Namespace":"default","Path":"nomad-bootstrapd/cluster","Items":{"state":"{}"},"ModifyIndex":8}`))
		}
	}))
	defer srv.Close()
	c, err := api.NewClient(&api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	v := NomadVars(c, "secret")
	if err := v.Write(context.Background(), VarPath, map[string]string{"state": "{}"}, 7); err != nil || hits.Load() != 2 {
		t.Fatalf("Write = %v after %d requests; want nil after 2", err, hits.Load())
	}
	if err := v.Write(context.Background(), VarPath, map[string]string{"state": "{}"}, 3); !errors.Is(err, ErrConflict) || hits.Load() != 3 {
		t.Fatalf("Write with a stale index = %v after %d requests; want a conflict after 3", err, hits.Load())
	}
}

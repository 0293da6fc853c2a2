package certs

import (
	"bytes"
	"container/heap"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of a sign request.
const (
	// MaxSignRequestSize is the largest encoded SignRequest accepted.
	MaxSignRequestSize = 32 << 10
	// MaxNodeFieldLen is the longest NodeID or NodeName, in bytes.
	MaxNodeFieldLen = 64
	// NonceSize is the length of a request nonce.
	NonceSize = 16
	// MACSize is the length of a request MAC (HMAC-SHA-256).
	MACSize = sha256.Size
	// MaxAdmissionSize is the longest Admission: a client token's expiry
	// and tag (24 bytes) or an admission (64 bytes).
	MaxAdmissionSize = ed25519.SignatureSize

	// DefaultMaxSkew is the clock difference a Verifier allows by default
	// between a request's timestamp and its own clock.
	DefaultMaxSkew = 2 * time.Minute

	// DefaultMaxNonces bounds the nonces a Verifier remembers; when full it
	// forgets the one that expires first.
	DefaultMaxNonces = 100_000
)

// signRequestDomain starts the MAC input, so that a MAC of a request cannot
// be mistaken for a MAC of anything else made with the same key.
const signRequestDomain = "nomad-bootstrapd sign request v2"

// Sentinel errors returned (wrapped) by Verifier.Verify; test with
// errors.Is.
var (
	// ErrBadMAC means the request was not made with this cluster's join
	// token: another cluster's, a forged or a corrupted request.
	ErrBadMAC = errors.New("certs: request is not authenticated by this cluster's token")
	// ErrStale means the request's timestamp is too far from the
	// verifier's clock, in the past or the future.
	ErrStale = errors.New("certs: request timestamp is outside the allowed clock skew")
	// ErrReplay means the request's nonce was seen before: the request is
	// a replay.
	ErrReplay = errors.New("certs: request nonce was already used (replayed request)")
	// ErrBadSignature means the request is not signed by the identity key
	// it names.
	ErrBadSignature = errors.New("certs: request is not signed by the identity key it names")
)

// KeysRequestCSR is the CSR field of a request for the agents' gossip
// keys instead of a certificate: the request is authenticated like any
// other (MAC, identity signature, freshness, replay), and the CA endpoint
// takes it only on its keys route, and a real CSR only on its sign route.
var KeysRequestCSR = []byte("nomad-bootstrapd gossip keys request")

// SignRequest is a node's request for a certificate, authenticated with an
// HMAC keyed with the token's CSRKey and signed by the node's identity key.
// Its JSON form (Encode) is what travels to the CA holder.
type SignRequest struct {
	// NodeID and NodeName identify the requesting node; at most
	// MaxNodeFieldLen bytes of printable UTF-8 each.
	NodeID   string `json:"node_id"`
	NodeName string `json:"node_name"`
	// Role is the role the node asks for; the CA's authority decides
	// whether it gets it.
	Role Role `json:"role"`
	// CSR is the DER certificate request (base64 in JSON).
	CSR []byte `json:"csr"`
	// Timestamp is when the request was sealed, in Unix seconds.
	Timestamp int64 `json:"timestamp"`
	// Nonce is NonceSize random bytes, unique per request.
	Nonce []byte `json:"nonce"`
	// Identity is the node's Ed25519 identity public key, the one its
	// gossip meta announces.
	Identity []byte `json:"identity"`
	// Admission shows that a node holding a client token may be admitted:
	// its token's expiry and tag (ClientToken.Admission) for a first
	// certificate, or the admission the CA returned with it
	// (Token.Admit) for a renewal. Empty for a server-token holder.
	Admission []byte `json:"admission,omitempty"`
	// MAC is HMAC-SHA-256 of the fields above (see Seal).
	MAC []byte `json:"mac"`
	// Signature is the identity key's Ed25519 signature of the same.
	Signature []byte `json:"signature"`
}

// Seal sets the request's Timestamp from now, a fresh Nonce from rnd,
// Identity from identity, the MAC under key (Token.CSRKey) and the
// Signature by identity. Both cover, after the domain separator
// "nomad-bootstrapd sign request v2", NodeID, NodeName, Role, CSR,
// Timestamp (8 bytes big endian), Nonce, Identity and Admission, each
// preceded by its length as 4 bytes big endian.
func (r *SignRequest) Seal(key []byte, identity ed25519.PrivateKey, now time.Time, rnd io.Reader) error {
	if err := r.checkFields(); err != nil {
		return err
	}
	if len(identity) != ed25519.PrivateKeySize {
		return errors.New("certs: sealing a sign request needs the node's identity key")
	}
	nonce := make([]byte, NonceSize)
	if _, err := io.ReadFull(rnd, nonce); err != nil {
		return fmt.Errorf("certs: reading randomness for a request nonce: %w", err)
	}
	r.Timestamp = now.Unix()
	r.Nonce = nonce
	r.Identity = bytes.Clone(identity.Public().(ed25519.PublicKey))
	msg := r.signedBytes()
	r.MAC = mac(key, msg)
	r.Signature = ed25519.Sign(identity, msg)
	return nil
}

// signedBytes returns what the MAC and the signature cover.
func (r *SignRequest) signedBytes() []byte {
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(r.Timestamp))
	var b []byte
	for _, field := range [][]byte{
		[]byte(signRequestDomain),
		[]byte(r.NodeID),
		[]byte(r.NodeName),
		[]byte(r.Role),
		r.CSR,
		ts[:],
		r.Nonce,
		r.Identity,
		r.Admission,
	} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(field)))
		b = append(b, field...)
	}
	return b
}

// mac returns HMAC-SHA-256 of msg under key.
func mac(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// checkFields checks the fields that Seal does not set.
func (r *SignRequest) checkFields() error {
	if err := checkNodeField("node_id", r.NodeID); err != nil {
		return err
	}
	if err := checkNodeField("node_name", r.NodeName); err != nil {
		return err
	}
	if !r.Role.Valid() {
		return fmt.Errorf("certs: sign request has unknown role %q; want server, client or cli", r.Role)
	}
	switch {
	case len(r.CSR) == 0:
		return errors.New("certs: sign request has no csr")
	case len(r.CSR) > MaxCSRSize:
		return fmt.Errorf("certs: sign request csr is %d bytes, more than the %d allowed", len(r.CSR), MaxCSRSize)
	case len(r.Admission) > MaxAdmissionSize:
		return fmt.Errorf("certs: sign request admission is %d bytes, more than the %d allowed", len(r.Admission), MaxAdmissionSize)
	}
	return nil
}

// check checks every field's presence and shape (not the MAC's value).
func (r *SignRequest) check() error {
	if err := r.checkFields(); err != nil {
		return err
	}
	if r.Timestamp <= 0 {
		return errors.New("certs: sign request has no timestamp")
	}
	if len(r.Nonce) != NonceSize {
		return fmt.Errorf("certs: sign request nonce is %d bytes, want %d", len(r.Nonce), NonceSize)
	}
	if len(r.MAC) != MACSize {
		return fmt.Errorf("certs: sign request mac is %d bytes, want %d", len(r.MAC), MACSize)
	}
	if len(r.Identity) != ed25519.PublicKeySize {
		return fmt.Errorf("certs: sign request identity key is %d bytes, want %d", len(r.Identity), ed25519.PublicKeySize)
	}
	if len(r.Signature) != ed25519.SignatureSize {
		return fmt.Errorf("certs: sign request signature is %d bytes, want %d", len(r.Signature), ed25519.SignatureSize)
	}
	return nil
}

// checkNodeField checks a node ID or name: present, short, printable UTF-8,
// since it ends up in logs.
func checkNodeField(name, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("certs: sign request has no %s", name)
	case len(v) > MaxNodeFieldLen:
		return fmt.Errorf("certs: sign request %s is %d bytes, more than the %d allowed", name, len(v), MaxNodeFieldLen)
	case !utf8.ValidString(v):
		return fmt.Errorf("certs: sign request %s is not valid UTF-8", name)
	}
	for _, c := range v {
		if !unicode.IsPrint(c) {
			return fmt.Errorf("certs: sign request %s contains the non-printable character %U", name, c)
		}
	}
	return nil
}

// Encode returns the request's JSON form. It fails on a request that
// DecodeSignRequest would reject, such as an unsealed one.
func (r *SignRequest) Encode() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("certs: encoding a sign request: %w", err)
	}
	if len(b) > MaxSignRequestSize {
		return nil, fmt.Errorf("certs: sign request is %d bytes, more than the %d allowed", len(b), MaxSignRequestSize)
	}
	return b, nil
}

// DecodeSignRequest parses an encoded request strictly: at most
// MaxSignRequestSize bytes of one JSON object with no unknown fields and
// nothing after it, every field present and well formed. It does not check
// the MAC; Verifier.Verify does. Errors do not quote the input.
func DecodeSignRequest(b []byte) (*SignRequest, error) {
	if len(b) > MaxSignRequestSize {
		return nil, fmt.Errorf("certs: sign request is %d bytes, more than the %d allowed", len(b), MaxSignRequestSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r SignRequest
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("certs: sign request is not valid JSON of the expected shape: %s", jsonErrorText(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("certs: sign request has data after its JSON object")
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	return &r, nil
}

// jsonErrorText describes a JSON decoding error without quoting input
// values.
func jsonErrorText(err error) string {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	case errors.As(err, &syntax):
		return fmt.Sprintf("syntax error at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q has the wrong type", typ.Field)
		}
		return "wrong type, want an object"
	}
	// Unknown fields ("json: unknown field \"x\"") and base64 errors: the
	// message names a field or an offset, which is safe to show but cut
	// to a sane length.
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120] + "…"
	}
	return msg
}

// Verifier checks sign requests: their MAC, their timestamp and that their
// nonce is fresh. It is safe for concurrent use.
type Verifier struct {
	key       []byte
	maxSkew   time.Duration
	now       func() time.Time
	maxNonces int

	mu     sync.Mutex
	nonces map[[NonceSize]byte]int64 // nonce -> expiry, Unix seconds
	expiry nonceHeap                 // the same nonces, earliest expiry first
}

// NewVerifier returns a Verifier for requests sealed with key
// (Token.CSRKey). maxSkew is the largest clock difference accepted
// (DefaultMaxSkew when 0); now is the clock (time.Now when nil). It
// remembers nonces until their request's timestamp leaves the window, at
// most DefaultMaxNonces of them.
func NewVerifier(key []byte, maxSkew time.Duration, now func() time.Time) *Verifier {
	if maxSkew <= 0 {
		maxSkew = DefaultMaxSkew
	}
	if now == nil {
		now = time.Now
	}
	return &Verifier{
		key:       bytes.Clone(key),
		maxSkew:   maxSkew,
		now:       now,
		maxNonces: DefaultMaxNonces,
		nonces:    make(map[[NonceSize]byte]int64),
	}
}

// Verify checks r's MAC (in constant time), then its signature by the
// identity key it names, then that its timestamp is within the allowed
// skew of the clock, then that its nonce was not seen, and records the
// nonce. Errors wrap ErrBadMAC, ErrBadSignature, ErrStale or ErrReplay.
// Whether the identity key is the node's is the authority's to check.
func (v *Verifier) Verify(r *SignRequest) error {
	if len(r.MAC) != MACSize || len(r.Nonce) != NonceSize {
		return fmt.Errorf("%w; check that the node uses this cluster's join token", ErrBadMAC)
	}
	msg := r.signedBytes()
	if !hmac.Equal(r.MAC, mac(v.key, msg)) {
		return fmt.Errorf("%w; check that the node uses this cluster's join token", ErrBadMAC)
	}
	if len(r.Identity) != ed25519.PublicKeySize || !ed25519.Verify(r.Identity, msg, r.Signature) {
		return ErrBadSignature
	}
	now := v.now()
	ts := time.Unix(r.Timestamp, 0)
	if d := now.Sub(ts); d > v.maxSkew || d < -v.maxSkew {
		dir := "behind"
		if d < 0 {
			dir, d = "ahead of", -d
		}
		return fmt.Errorf("%w: the request time is %s %s this node's clock (allowed ±%s); check both clocks (NTP)",
			ErrStale, d.Truncate(time.Second), dir, v.maxSkew)
	}

	var nonce [NonceSize]byte
	copy(nonce[:], r.Nonce)
	// The nonce must be remembered while a replay would still pass the
	// timestamp check: until ts+maxSkew, rounded up to the next second.
	exp := ts.Add(v.maxSkew).Unix() + 1

	v.mu.Lock()
	defer v.mu.Unlock()
	nowUnix := now.Unix()
	for len(v.expiry) > 0 && v.expiry[0].expiry < nowUnix {
		delete(v.nonces, heap.Pop(&v.expiry).(nonceEntry).nonce)
	}
	if _, seen := v.nonces[nonce]; seen {
		return ErrReplay
	}
	for len(v.expiry) >= v.maxNonces {
		delete(v.nonces, heap.Pop(&v.expiry).(nonceEntry).nonce)
	}
	v.nonces[nonce] = exp
	heap.Push(&v.expiry, nonceEntry{nonce: nonce, expiry: exp})
	return nil
}

// nonceEntry is a remembered nonce and when it may be forgotten.
type nonceEntry struct {
	nonce  [NonceSize]byte
	expiry int64
}

// nonceHeap is a min-heap of nonces by expiry (container/heap).
type nonceHeap []nonceEntry

func (h nonceHeap) Len() int           { return len(h) }
func (h nonceHeap) Less(i, j int) bool { return h[i].expiry < h[j].expiry }
func (h nonceHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nonceHeap) Push(x any)        { *h = append(*h, x.(nonceEntry)) }
func (h *nonceHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

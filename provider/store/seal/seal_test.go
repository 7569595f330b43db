package seal

import (
	"bytes"
	"testing"
)

// TestDerive: one key per purpose and key-encryption key, the same every
// time (a restart, another node), and never the key-encryption key itself.
func TestDerive(t *testing.T) {
	k1, k2 := NewKey(), NewKey()
	b1, _ := New(k1)
	b1again, _ := New(k1)
	b2, _ := New(k2)
	a := b1.Derive("audit-chain")
	switch {
	case len(a) != KeySize:
		t.Fatalf("derived %d bytes", len(a))
	case !bytes.Equal(a, b1again.Derive("audit-chain")):
		t.Error("the same key and purpose derived two keys")
	case bytes.Equal(a, b1.Derive("recovery-codes")):
		t.Error("two purposes share a key")
	case bytes.Equal(a, b2.Derive("audit-chain")):
		t.Error("two key-encryption keys derive the same key")
	case bytes.Equal(a, k1):
		t.Error("the derived key is the key-encryption key")
	}
	k1[0] ^= 1 // New keeps its own copy
	if !bytes.Equal(a, b1.Derive("audit-chain")) {
		t.Error("changing the caller's slice changed the box's key")
	}
}

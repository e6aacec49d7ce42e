// Package fieldcrypt encrypts logbook's sensitive fields (task input, AI
// output and results, agent instructions, failure and cancel reasons) with
// AES-256-GCM under a data key per workspace, and wraps data keys with a
// master key held by a KeyService.
//
// A sealed field is a string in the same JSON slot as the plaintext:
//
//	lbx1.<data key generation>.<base64url(nonce ‖ ciphertext ‖ tag)>
//
// "lbx1" names the format (a later format gets another prefix and this one
// stays readable). The additional data binds the ciphertext to its
// workspace and field name, so a sealed value moved to another workspace or
// another field does not open.
//
// A wrapped data key records the id of the master key that wrapped it, so
// master keys rotate without touching the log: keys wrapped by the old one
// stay readable while it is listed, and rewrapping them under the new one
// is a new record of the (small) key stream, never a rewrite of events.
package fieldcrypt

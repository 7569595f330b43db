package flows

import "github.com/lanyard-idp/lanyard/provider/store/seal"

// SealTOTPSecret seals an authenticator-app secret as the journey stores it
// (store.TOTP.Secret): for tools that write officers in bulk, such as
// `lanyard fixture`, whose officers must then sign in like any other.
func SealTOTPSecret(box *seal.Box, secret []byte) []byte { return box.Seal(secret, purposeTOTP) }

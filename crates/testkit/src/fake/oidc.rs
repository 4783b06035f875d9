//! An OpenID Connect issuer for the API's bearer-token tests: `/.well-known/openid-configuration`
//! (`issuer`, `jwks_uri`) and `/jwks` (RFC 7517 RSA keys with `kid`), and RS256 tokens signed
//! with one of two RSA key pairs generated for these tests (`oidc/test-key-*.pem`, no other use).
//! [`FakeOidc::rotate`] publishes the second key and signs with it, as an issuer rotating keys does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use super::serve;

const KEYS: [(&str, &str, &str); 2] = [
    (
        "test-key-1",
        include_str!("oidc/test-key-1.pem"),
        "stXvP4RjNTahJHrkivrBcH7y8PTeZUuupLrAWLk8ijwjFGDStnP7NVFsLLh6hl4Wwzv5WnhmmboV0oQRqI06o0Xqu_XVGKc2UPYpibe7AVo-yswarhjrM0NJXNQa88Sts5DrLXK2Rzy1v7C4WVwPiFViaiPjn8Cj4_52SO32HqLzArJnsDiQsO8NiXJbLNYvMX9_Oe_V1rx5lBGHdO0hLMCWQIkW33dXe6qMdfToHRXQzbL0cryIqxWEYEKou5UnnEhsTAvf8Z5ZnDkBnHbUrruj-35l-Sra_8dKID8Kx4bBvvS_0rbRxSGRA0iAryJH4vG13-VXuWX_JTeH9R4WLw",
    ),
    (
        "test-key-2",
        include_str!("oidc/test-key-2.pem"),
        "0hnwpKi2dudPNBxZxJW5vLvVwIqXsbrJjIJ1xgxd3RqP7PNKBE60z9BLsoRMd5EwTLqTvUXrSRZdXf2a17Sob8Lqaei1Qi4YQOA8f2rygTloIF2mZ_7yOq4v4_IeolY8HyKuPiBzZSIGo2yCd8bICh2tUa832zXQ13nnBMOCKaAf8TK8iT1SFyXVpSvKOS165jAHxAmdscvBhXJ4Xq55LG-86tVyYR8GFT7lmUaOVJsbkINOzzChUDXPgKaB4YoyHOPkXPRilD4CFXr130RJVvjXVHbigAmHV8B0C4d40Nd-JZi_X6hrn_Yd72FRBnvOt0YcJiGf_8juF7ja_AfO-Q",
    ),
];

#[derive(Default)]
struct Shared {
    rotated: AtomicBool,
    jwks_fetches: AtomicUsize,
    base: std::sync::OnceLock<String>,
}

pub struct FakeOidc {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeOidc {
    pub async fn start() -> Self {
        let shared: Arc<Shared> = Arc::default();
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(Arc::clone(&shared));
        let addr = serve(router).await;
        let _ = shared.base.set(format!("http://{addr}"));
        FakeOidc { addr, shared }
    }

    /// The issuer (`iss`) of its tokens.
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on the JWKS holds only the second key, and tokens are signed with it.
    pub fn rotate(&self) {
        self.shared.rotated.store(true, Ordering::SeqCst);
    }

    /// How often the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    /// An RS256 token with `claims` (`iss` is added when absent), signed with the current key.
    pub fn token(&self, claims: Value) -> String {
        let (kid, pem, _) = KEYS[usize::from(self.shared.rotated.load(Ordering::SeqCst))];
        self.token_with(kid, pem, claims)
    }

    /// A token signed with a key the issuer never published.
    pub fn forged_token(&self, claims: Value) -> String {
        let (_, pem, _) = KEYS[usize::from(!self.shared.rotated.load(Ordering::SeqCst))];
        self.token_with("test-key-1", pem, claims)
    }

    /// A token signed with the current key but naming key id `kid`.
    pub fn token_with_kid(&self, kid: &str, claims: Value) -> String {
        let (_, pem, _) = KEYS[usize::from(self.shared.rotated.load(Ordering::SeqCst))];
        self.token_with(kid, pem, claims)
    }

    fn token_with(&self, kid: &str, pem: &str, mut claims: Value) -> String {
        if claims.get("iss").is_none() {
            claims["iss"] = Value::String(self.issuer());
        }
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).expect("the test key parses");
        jsonwebtoken::encode(&header, &claims, &key).expect("the token signs")
    }
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let base = shared.base.get().cloned().unwrap_or_default();
    Json(json!({"issuer": base, "jwks_uri": format!("{base}/jwks"), "id_token_signing_alg_values_supported": ["RS256"]}))
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Json<Value> {
    shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let (kid, _, n) = KEYS[usize::from(shared.rotated.load(Ordering::SeqCst))];
    Json(json!({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": "AQAB"}]}))
}

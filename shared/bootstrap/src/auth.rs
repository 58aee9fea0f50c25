//! Bearer-token authentication and role checks, as a tower layer in front of every service.

use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use http::{Request, Response};
use tonic::Status;
use tower_layer::Layer;
use tower_service::Service;

use crate::policy::{Requirement, requirement};
use crate::tokens::TokenTable;

/// The token table a running service accepts; replaced whole when the tokens file is read
/// again (SIGHUP), so a revoked token stops working without a restart.
#[derive(Debug, Clone)]
pub struct SharedTokens(Arc<RwLock<Arc<TokenTable>>>);

impl SharedTokens {
    /// Starts with `tokens`.
    pub fn new(tokens: TokenTable) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(tokens))))
    }

    /// The table now.
    pub fn current(&self) -> Arc<TokenTable> {
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Replaces the table.
    pub fn replace(&self, tokens: TokenTable) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(tokens);
    }
}

/// Checks `authorization: Bearer <token>` against the token table and the method's required
/// access, and hands the [`syncguard_domain::Principal`] to handlers in request extensions.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    tokens: SharedTokens,
}

impl AuthLayer {
    /// A layer accepting the tokens of `tokens` (as they are at each call).
    pub fn new(tokens: SharedTokens) -> Self {
        Self { tokens }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            tokens: self.tokens.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    tokens: SharedTokens,
}

impl<S> AuthService<S> {
    fn authorize<B>(&self, request: &mut Request<B>) -> Result<(), Status> {
        let path = request.uri().path().to_owned();
        let access = match requirement(&path) {
            Requirement::Open => return Ok(()),
            Requirement::Token(access) => access,
            Requirement::Undeclared => {
                return Err(Status::permission_denied(format!(
                    "{path} has no declared role, so nobody may call it"
                )));
            }
        };
        let token = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                Status::unauthenticated(
                    "missing bearer token: send `authorization: Bearer <token>` metadata",
                )
            })?;
        let principal = self
            .tokens
            .current()
            .authenticate(token)
            .ok_or_else(|| Status::unauthenticated("unknown bearer token"))?
            .clone();
        if !principal.role.grants(access) {
            return Err(Status::permission_denied(format!(
                "{path} needs the {access} role; {} has role {}",
                principal.name, principal.role
            )));
        }
        tracing::Span::current().record("enduser.id", principal.to_string());
        request.extensions_mut().insert(principal);
        Ok(())
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response<ResBody>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        match self.authorize(&mut request) {
            Ok(()) => Either::Left(self.inner.call(request)),
            Err(status) => {
                tracing::info!(path = request.uri().path(), code = ?status.code(), "call refused");
                Either::Right(ready(Ok(status.into_http())))
            }
        }
    }
}

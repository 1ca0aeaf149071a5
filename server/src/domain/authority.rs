//! Who may administer: the operator (all tenants) and a tenant's admins.
//!
//! Both are proofs, not claims: their fields are private, so only the checks
//! here make one. [`Latch::operator`] checks the operator token,
//! `Latch::tenant_admin` (in `admin`) checks an access token or the operator
//! token against one tenant, and [`Operator::local`] stands for whoever runs
//! the binary on its own data directory (the CLI, the demo tenant at start).
//! Every operator-only domain method takes an [`Operator`] and every tenant
//! administration method an [`Actor`], so a handler that forgets the check
//! does not compile.

use super::{Error, Latch, Principal, Result, TenantId};
use crate::crypto::{hashes_equal, token_hash};

/// The operator's authority over every tenant.
///
/// Code outside this module cannot make one without a check:
///
/// ```compile_fail,E0451
/// let forged = latch_server::domain::Operator { name: "operator" };
/// ```
///
/// ```compile_fail,E0624
/// let forged = latch_server::domain::Operator::system();
/// ```
#[derive(Debug, Clone)]
pub struct Operator {
    /// How audit events name it.
    name: &'static str,
}

impl Operator {
    /// Whoever runs latch on its data directory: the CLI (which refuses a
    /// directory a server holds) and the server's own start-up.
    pub(crate) fn local() -> Operator {
        Operator { name: "operator" }
    }

    /// latch itself, for scheduled work (automatic key rotation).
    pub(super) fn system() -> Operator {
        Operator { name: "system" }
    }

    /// How audit events name the operator.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// The authority to administer one tenant: its operator, or a user of the
/// tenant holding the `admin` role. It names its tenant, so an admin of one
/// tenant cannot be passed to a call about another.
///
/// ```compile_fail,E0624
/// # fn forge(principal: latch_server::domain::Principal) {
/// let forged = latch_server::domain::Actor::admin(principal);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Actor {
    tenant: TenantId,
    who: Who,
}

#[derive(Debug, Clone)]
enum Who {
    Operator(Operator),
    Admin(Box<Principal>),
}

impl Actor {
    /// The operator acting in `tenant` (the caller has checked that it exists).
    pub fn operator(operator: Operator, tenant: TenantId) -> Actor {
        Actor { tenant, who: Who::Operator(operator) }
    }

    /// An admin of the tenant of `principal`; only `tenant_admin` checks the role.
    pub(super) fn admin(principal: Principal) -> Actor {
        Actor { tenant: principal.user.tenant.clone(), who: Who::Admin(Box::new(principal)) }
    }

    /// The tenant this authority covers.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// How audit events name the actor.
    pub fn name(&self) -> String {
        match &self.who {
            Who::Operator(operator) => operator.name().to_owned(),
            Who::Admin(principal) => principal.user.id.to_string(),
        }
    }
}

impl Latch {
    /// The operator's authority, if `presented` is the operator token
    /// (compared in constant time on its hash).
    pub fn operator(&self, presented: &str) -> Result<Operator> {
        if hashes_equal(&token_hash(presented), &self.operator_token_hash) {
            Ok(Operator { name: "operator" })
        } else {
            Err(Error::NotOperator)
        }
    }
}

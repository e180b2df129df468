//! The stored forms of statuses and roles. Rows hold them as text; code
//! holds these enums, parsed once where a row is read.

macro_rules! stored_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? } else $fallback:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Text this version does not know reads as the safe fallback.
            pub fn parse(s: &str) -> Self {
                match s { $($text => $name::$variant,)+ _ => $name::$fallback }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

stored_enum!(
    /// A virtual key's status; an unknown stored value counts as revoked.
    KeyStatus { Active = "active", Disabled = "disabled", Revoked = "revoked" } else Revoked
);

stored_enum!(
    /// A user's status; an unknown stored value counts as disabled.
    UserStatus { Active = "active", Disabled = "disabled" } else Disabled
);

stored_enum!(
    /// Where a notification goes; an unknown stored value reads as a webhook
    /// (whose URL then fails the outbound check rather than going anywhere odd).
    DestinationKind { Webhook = "webhook", Sns = "sns", EventBridge = "eventbridge" } else Webhook
);

stored_enum!(
    /// A delivery's state; an unknown stored value counts as dead (never resent).
    DeliveryState { Pending = "pending", Delivered = "delivered", Dead = "dead" } else Dead
);

stored_enum!(
    /// A user's role; an unknown stored value counts as a member.
    Role { Admin = "admin", Member = "member" } else Member
);

stored_enum!(
    /// How an endpoint authenticates; an unknown stored value reads as the
    /// data planes' default chain.
    CredentialKind { Default = "default", AssumeRole = "assume_role", ApiKey = "api_key" } else Default
);

stored_enum!(
    /// A team's routing strategy; "" (and an unknown stored value) is the
    /// organisation's.
    Routing {
        Inherit = "",
        Fallback = "fallback",
        RoundRobin = "round-robin",
        Sticky = "sticky",
        Adaptive = "adaptive",
    } else Inherit
);

stored_enum!(
    /// Which inference profiles an endpoint's model ids name; "" (and an
    /// unknown stored value) is the geo of its region.
    Scope { Geo = "", Global = "global", Explicit = "explicit", Regional = "regional" } else Geo
);

stored_enum!(
    /// An endpoint's circuit as a data plane last reported it; "" is none.
    Circuit { Unknown = "", Closed = "closed", HalfOpen = "half_open", Open = "open" } else Unknown
);

/// What an audit entry records; stored as its dotted name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    ApiTokenCreate,
    ApiTokenRevoke,
    EndpointCreate,
    BudgetDelete,
    BudgetSet,
    EndpointDelete,
    EndpointUpdate,
    IdpCreate,
    IdpDelete,
    IdpUpdate,
    KeyCreate,
    KeyDelete,
    KeyRevoke,
    KeyUpdate,
    ManagedSettingsDelete,
    ManagedSettingsSet,
    ModelCreate,
    ModelDelete,
    ModelUpdate,
    NotificationCreate,
    NotificationDelete,
    NotificationRotateSecret,
    NotificationTest,
    NotificationUpdate,
    PriceDelete,
    PriceSet,
    ScimGroupCreate,
    ScimGroupDelete,
    ScimGroupUpdate,
    ScimTokenCreate,
    ScimTokenRevoke,
    ScimUserDelete,
    SearchModeSet,
    SearchProviderDelete,
    SearchProviderSet,
    SearchTest,
    SessionRevoke,
    SetupTokenCreate,
    SetupTokenUse,
    SettingDelete,
    SettingSet,
    TeamAddMember,
    TeamCreate,
    TeamDelete,
    TeamRemoveMember,
    TeamUpdate,
    UserCreate,
    UserDelete,
    UserSignIn,
    UserUpdate,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::ApiTokenCreate => "api_token.create",
            AuditAction::ApiTokenRevoke => "api_token.revoke",
            AuditAction::BudgetDelete => "budget.delete",
            AuditAction::BudgetSet => "budget.set",
            AuditAction::EndpointCreate => "endpoint.create",
            AuditAction::EndpointDelete => "endpoint.delete",
            AuditAction::EndpointUpdate => "endpoint.update",
            AuditAction::IdpCreate => "idp.create",
            AuditAction::IdpDelete => "idp.delete",
            AuditAction::IdpUpdate => "idp.update",
            AuditAction::KeyCreate => "key.create",
            AuditAction::KeyDelete => "key.delete",
            AuditAction::KeyRevoke => "key.revoke",
            AuditAction::KeyUpdate => "key.update",
            AuditAction::ManagedSettingsDelete => "managed_settings.delete",
            AuditAction::ManagedSettingsSet => "managed_settings.set",
            AuditAction::ModelCreate => "model.create",
            AuditAction::ModelDelete => "model.delete",
            AuditAction::ModelUpdate => "model.update",
            AuditAction::NotificationCreate => "notification.create",
            AuditAction::NotificationDelete => "notification.delete",
            AuditAction::NotificationRotateSecret => "notification.rotate_secret",
            AuditAction::NotificationTest => "notification.test",
            AuditAction::NotificationUpdate => "notification.update",
            AuditAction::PriceDelete => "price.delete",
            AuditAction::PriceSet => "price.set",
            AuditAction::ScimGroupCreate => "scim_group.create",
            AuditAction::ScimGroupDelete => "scim_group.delete",
            AuditAction::ScimGroupUpdate => "scim_group.update",
            AuditAction::ScimTokenCreate => "scim_token.create",
            AuditAction::ScimTokenRevoke => "scim_token.revoke",
            AuditAction::ScimUserDelete => "scim_user.delete",
            AuditAction::SearchModeSet => "search.mode_set",
            AuditAction::SearchProviderDelete => "search.provider_delete",
            AuditAction::SearchProviderSet => "search.provider_set",
            AuditAction::SearchTest => "search.test",
            AuditAction::SessionRevoke => "session.revoke",
            AuditAction::SetupTokenCreate => "setup_token.create",
            AuditAction::SetupTokenUse => "setup_token.use",
            AuditAction::SettingDelete => "setting.delete",
            AuditAction::SettingSet => "setting.set",
            AuditAction::TeamAddMember => "team.add_member",
            AuditAction::TeamCreate => "team.create",
            AuditAction::TeamDelete => "team.delete",
            AuditAction::TeamRemoveMember => "team.remove_member",
            AuditAction::TeamUpdate => "team.update",
            AuditAction::UserCreate => "user.create",
            AuditAction::UserDelete => "user.delete",
            AuditAction::UserSignIn => "user.sign_in",
            AuditAction::UserUpdate => "user.update",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_round_trips_and_unknown_text_is_the_safe_fallback() {
        for s in [KeyStatus::Active, KeyStatus::Disabled, KeyStatus::Revoked] {
            assert_eq!(KeyStatus::parse(s.as_str()), s);
        }
        assert_eq!(KeyStatus::parse("paused"), KeyStatus::Revoked);
        assert_eq!(UserStatus::parse(""), UserStatus::Disabled);
        assert_eq!(Role::parse("owner"), Role::Member);
        for r in [Routing::Inherit, Routing::Fallback, Routing::RoundRobin, Routing::Sticky, Routing::Adaptive] {
            assert_eq!(Routing::parse(r.as_str()), r);
        }
        assert_eq!(Routing::parse("random"), Routing::Inherit);
        assert_eq!(CredentialKind::parse("sso"), CredentialKind::Default);
        assert_eq!(Scope::parse("explicit"), Scope::Explicit);
        assert_eq!(Circuit::parse("half_open"), Circuit::HalfOpen);
    }
}

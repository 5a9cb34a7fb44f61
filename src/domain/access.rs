//! Who may do what in an organization: the one policy every dashboard
//! route (JSON or HTML) applies, through
//! [`crate::app::Caller::require`].
//!
//! A member reads and triages; an admin also manages projects, keys,
//! alerts and members; an owner also manages owners. Someone outside an organization
//! may do nothing in it, and is told it does not exist.

use super::Role;

/// Something a caller asks to do inside an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See the organization, its members, projects, issues and events.
    Read,
    /// Change an issue's status or assignee.
    Triage,
    /// Create projects.
    ManageProjects,
    /// Create, list and revoke ingest keys.
    ManageKeys,
    /// Create, change and delete alert rules and channels; send tests.
    ManageAlerts,
    /// Add, change and remove members who are not owners.
    ManageMembers,
    /// Make, change or remove owners.
    ManageOwners,
}

impl Action {
    /// The least role allowed to do it.
    pub fn least_role(self) -> Role {
        match self {
            Action::Read | Action::Triage => Role::Member,
            Action::ManageProjects
            | Action::ManageKeys
            | Action::ManageAlerts
            | Action::ManageMembers => Role::Admin,
            Action::ManageOwners => Role::Owner,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Triage => "triage",
            Action::ManageProjects => "manage projects",
            Action::ManageKeys => "manage keys",
            Action::ManageAlerts => "manage alerts",
            Action::ManageMembers => "manage members",
            Action::ManageOwners => "manage owners",
        }
    }
}

impl Role {
    /// How much a role may do: member < admin < owner.
    fn rank(self) -> u8 {
        match self {
            Role::Member => 0,
            Role::Admin => 1,
            Role::Owner => 2,
        }
    }

    /// Whether a member with this role may do `action`.
    pub fn may(self, action: Action) -> bool {
        self.rank() >= action.least_role().rank()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_may_do_exactly_its_share() {
        use Action::*;
        let table = [
            // action, member, admin, owner
            (Read, true, true, true),
            (Triage, true, true, true),
            (ManageProjects, false, true, true),
            (ManageKeys, false, true, true),
            (ManageAlerts, false, true, true),
            (ManageMembers, false, true, true),
            (ManageOwners, false, false, true),
        ];
        for (action, member, admin, owner) in table {
            assert_eq!(Role::Member.may(action), member, "member {action:?}");
            assert_eq!(Role::Admin.may(action), admin, "admin {action:?}");
            assert_eq!(Role::Owner.may(action), owner, "owner {action:?}");
        }
    }
}

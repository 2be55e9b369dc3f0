//! Remote settings: the catalog of definitions, policy resolution, lock rules and sync merging.

pub mod definitions;
pub mod locks;
pub mod resolution;
pub mod store;
pub mod unlocks;

pub use definitions::{Constraints, MergeRule, Restrictiveness, SettingDefinition, ValueType};
pub use locks::{
    SettingRuleError, SettingsActor, lock_in_force, may_change_lock, may_write_value, plan_write,
};
pub use resolution::{
    DiffSide, EffectiveSetting, Explanation, Layer, LayerEntry, LayerKind, LayerSource, SettingDiff,
    diff_effective, resolve_effective_settings,
};

#[cfg(test)]
mod properties;

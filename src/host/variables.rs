//! Host side of `spin:variables/variables@3.0.0`: a component sees only its own variables.

use std::sync::Arc;

use wasmtime::component::{Accessor, HasData};

use super::bindings::variables::{self as v, Error};
use crate::variables::ComponentVariables;

pub struct VariablesState {
    pub vars: Arc<ComponentVariables>,
}

impl v::Host for VariablesState {}

pub struct VariablesHost;

impl HasData for VariablesHost {
    type Data<'a> = &'a mut VariablesState;
}

impl<T> v::HostWithStore<T> for VariablesHost {
    async fn get(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, Error>> {
        if let Err(reason) = crate::variables::validate_name(&name) {
            return Ok(Err(Error::InvalidName(reason)));
        }
        Ok(accessor.with(|mut a| {
            a.get()
                .vars
                .get(&name)
                .map(str::to_owned)
                .ok_or(Error::Undefined(format!("no variable for {name:?}")))
        }))
    }
}

//! A request header an operation documents but does not take from poem-openapi: the handler
//! (or the session check) reads it from the request itself — `X-Auth-Passive`, the proxy headers
//! of `GET /auth/verify`, where a header sent twice counts as absent.
//!
//! As a `Header<Option<String>>` parameter, poem-openapi looked each of them up by name on every
//! request — parsing the name from text each time, about 500 instructions a header, seven
//! headers on `/auth/verify` — to produce a value nobody read. [`Documented`] registers exactly
//! the parameter `Header<T>` registers (the same `in`, schema and `required`; the name and
//! description come from the operation's `#[oai(name)]` and doc comment, as before) and reads
//! nothing.

use std::marker::PhantomData;

use poem::{Request, RequestBody, Result};
use poem_openapi::{
    registry::{MetaParamIn, MetaSchemaRef, Registry},
    types::ParseFromParameter,
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
};

pub struct Documented<T>(PhantomData<T>);

impl<'a, T: ParseFromParameter> ApiExtractor<'a> for Documented<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::Parameter];
    const PARAM_IS_REQUIRED: bool = T::IS_REQUIRED;

    type ParamType = T;
    type ParamRawType = T::RawValueType;

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn param_in() -> Option<MetaParamIn> {
        Some(MetaParamIn::Header)
    }

    fn param_schema_ref() -> Option<MetaSchemaRef> {
        Some(T::schema_ref())
    }

    fn param_raw_type(&self) -> Option<&Self::ParamRawType> {
        None
    }

    async fn from_request(
        _request: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> Result<Self> {
        Ok(Documented(PhantomData))
    }
}

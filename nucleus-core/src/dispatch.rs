//! The dispatcher's decision: where a validated request goes, made from the
//! caller's capability table alone. SQE -> `caps::validate` -> [`dispatch`]
//! (capability look-up, kind and rights checks) -> the endpoint registry, a
//! nucleus service, or an answer now. No interface is special here: a
//! service is whatever the `rights` look-up says exists.

use caps::rights::endpoint as endpoint_rights;
use caps::{Buffer, CapId, CapTable, Interface, Request, Rights, TransportError};

use crate::endpoint::{Capability, EndpointId, Object, RouteKind};

/// What the nucleus does with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// Answered now with an empty success (a NOP, a release).
    Done,
    /// Refused now.
    Failed(TransportError),
    /// For the endpoint registry (another guest, or a serving end's own
    /// methods).
    Route(RouteKind),
    /// Gives up on the caller's calls in progress whose `user_data` is
    /// `target` (its own waiting service calls, then the endpoints').
    Cancel { target: u64 },
    /// The capability to a service's object was released: the service
    /// frees the object (a socket, a file).
    Released { interface: Interface, key: CapId },
    /// A call to a nucleus service, its rights checked: `object` is `None`
    /// for the service itself, else the key of an object it made.
    Service {
        interface: Interface,
        object: Option<CapId>,
        method: u16,
        params: Option<Buffer>,
        results: Buffer,
    },
}

/// Decides where `request` goes. `service_rights(interface, method)` is
/// the rights a service's method needs: `None` when the nucleus has no
/// such service, `Some(Err(UnknownMethod))` for a method it lacks.
pub fn dispatch(
    request: Request,
    caps: &mut CapTable<Capability>,
    service_rights: impl FnOnce(Interface, u16) -> Option<Result<Rights, TransportError>>,
) -> Dispatch {
    match request {
        Request::Nop => Dispatch::Done,
        Request::Cancel { target } => Dispatch::Cancel { target },
        Request::Release { cap } => match caps.remove(cap) {
            // Releasing the serving end closes the endpoint for its callers.
            Ok(Capability {
                object: Object::Server(endpoint),
                ..
            }) => Dispatch::Route(RouteKind::Close { endpoint }),
            Ok(Capability {
                object: Object::Item { interface, key },
                ..
            }) => Dispatch::Released { interface, key },
            Ok(_) => Dispatch::Done,
            Err(error) => Dispatch::Failed(error),
        },
        Request::Recv { cap, buffer } => match serving_end(caps, cap) {
            Ok(endpoint) => Dispatch::Route(RouteKind::Recv { endpoint, buffer }),
            Err(error) => Dispatch::Failed(error),
        },
        Request::Return {
            cap,
            token,
            reply,
            caps: sent,
            exception,
        } => match serving_end(caps, cap) {
            Ok(endpoint) => Dispatch::Route(RouteKind::Return {
                endpoint,
                token,
                reply: reply.unwrap_or(Buffer::NONE),
                caps: sent,
                exception,
            }),
            Err(error) => Dispatch::Failed(error),
        },
        Request::Call {
            cap,
            method,
            params,
            results,
            caps: sent,
        } => {
            let capability = match caps.get(cap) {
                Ok(capability) => *capability,
                Err(error) => return Dispatch::Failed(error),
            };
            let results = results.unwrap_or(Buffer::NONE);
            let (interface, object) = match capability.object {
                Object::Service(interface) => (interface, None),
                Object::Item { interface, key } => (interface, Some(key)),
                Object::Client(endpoint) if capability.rights.contains(endpoint_rights::CALL) => {
                    return Dispatch::Route(RouteKind::Call {
                        endpoint,
                        badge: capability.badge,
                        method,
                        params: params.unwrap_or(Buffer::NONE),
                        results,
                        caps: sent,
                    });
                }
                // A serving end's own methods (Endpoint), which the
                // registry implements.
                Object::Server(endpoint) if capability.rights.contains(endpoint_rights::MINT) => {
                    return Dispatch::Route(RouteKind::Endpoint {
                        endpoint,
                        method,
                        params: params.unwrap_or(Buffer::NONE),
                        results,
                    });
                }
                Object::Client(_) | Object::Server(_) => {
                    return Dispatch::Failed(TransportError::MissingRight);
                }
            };
            match service_rights(interface, method) {
                None => return Dispatch::Failed(TransportError::WrongCapKind),
                Some(Ok(needed)) if capability.rights.contains(needed) => {}
                Some(Ok(_)) => return Dispatch::Failed(TransportError::MissingRight),
                Some(Err(error)) => return Dispatch::Failed(error),
            }
            // No nucleus method takes capabilities (yet).
            if sent.count != 0 {
                return Dispatch::Failed(TransportError::MalformedMessage);
            }
            Dispatch::Service {
                interface,
                object,
                method,
                params,
                results,
            }
        }
    }
}

/// The endpoint a serving end names, for RECV and RETURN.
fn serving_end(caps: &CapTable<Capability>, cap: CapId) -> Result<EndpointId, TransportError> {
    let capability = caps.get(cap)?;
    let Object::Server(endpoint) = capability.object else {
        return Err(TransportError::WrongCapKind);
    };
    if capability.rights.contains(endpoint_rights::SERVE) {
        Ok(endpoint)
    } else {
        Err(TransportError::MissingRight)
    }
}

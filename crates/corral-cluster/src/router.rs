//! The router actor: keeps a [`Table`] of the member pools of one group
//! true. It learns members from ractor's process groups (joins and leaves,
//! which ractor_cluster mirrors from every connected node, and which arrive
//! within milliseconds of a node connecting or disconnecting), asks each new
//! member for its promise (a describe: the member enters routing with its
//! answer, if the promise agrees with what the router expects), pings every
//! described member each `ping_interval`, and takes out of routing any member not
//! heard from — by a ping answer or a reply — within `liveness`. That last
//! rule is what catches a node that hangs without closing its connection,
//! which ractor_cluster never notices.
//!
//! The router never sits on the request path: callers read the table and
//! call the member directly (see [`crate::ClusterHandle`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ractor::pg::GroupChangeMessage;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster::RactorMessage;

use crate::member::MemberMsg;
use crate::table::Table;
use crate::wire;

/// The router's own messages.
#[derive(RactorMessage)]
pub(crate) enum RouterMsg {
    /// Ping members and expire silent ones.
    Tick,
}

/// What the router actor needs.
pub(crate) struct RouterArgs {
    pub(crate) group: String,
    pub(crate) table: Arc<Table<ActorRef<MemberMsg>>>,
    pub(crate) ping_interval: Duration,
    pub(crate) liveness: Duration,
}

pub(crate) struct RouterState {
    args: RouterArgs,
    /// Members with a ping out: at most one each.
    pinging: Arc<Mutex<HashSet<ActorId>>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

pub(crate) struct Router;

fn join_cells(table: &Table<ActorRef<MemberMsg>>, cells: Vec<ActorCell>) {
    let now = Instant::now();
    for cell in cells {
        let id = cell.get_id();
        tracing::info!(member = %id, "member joined");
        table.join(id, ActorRef::<MemberMsg>::from(cell), now);
    }
}

impl Actor for Router {
    type Msg = RouterMsg;
    type State = RouterState;
    type Arguments = RouterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Monitor first, then read: a member joining in between is seen
        // twice, which `Table::join` ignores, rather than missed.
        ractor::pg::monitor(args.group.clone(), myself.get_cell());
        join_cells(&args.table, ractor::pg::get_members(&args.group));
        let ticker = myself.send_interval(args.ping_interval, || RouterMsg::Tick);
        let _ = myself.cast(RouterMsg::Tick);
        Ok(RouterState {
            args,
            pinging: Arc::default(),
            ticker: Some(ticker),
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        ractor::pg::demonitor(state.args.group.clone(), myself.get_id());
        if let Some(t) = state.ticker.take() {
            t.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RouterMsg::Tick => {
                let table = &state.args.table;
                table.expire(Instant::now(), state.args.liveness);
                for (id, actor, described) in table.actors() {
                    if !state.pinging.lock().insert(id) {
                        continue;
                    }
                    let table = table.clone();
                    let pinging = state.pinging.clone();
                    let limit = state.args.liveness;
                    tokio::spawn(async move {
                        let limits = wire::Limits::default();
                        if described {
                            let answer = actor
                                .call(
                                    |port| MemberMsg::Ping(wire::encode_ping(), port),
                                    Some(limit),
                                )
                                .await;
                            if let Ok(ractor::rpc::CallResult::Success(bytes)) = answer {
                                match wire::decode_load(&bytes, &limits) {
                                    Ok(report) => table.heard(id, report, Instant::now()),
                                    Err(e) => {
                                        tracing::warn!(member = %id, error = %e, "undecodable ping answer")
                                    }
                                }
                            }
                        } else {
                            let answer = actor
                                .call(
                                    |port| MemberMsg::Describe(wire::encode_describe(), port),
                                    Some(limit),
                                )
                                .await;
                            if let Ok(ractor::rpc::CallResult::Success(bytes)) = answer {
                                match wire::decode_promise(&bytes, &limits) {
                                    Ok((report, promise)) => {
                                        table.described(id, report, promise, Instant::now());
                                    }
                                    Err(e) => {
                                        tracing::warn!(member = %id, error = %e, "undecodable describe answer")
                                    }
                                }
                            }
                        }
                        pinging.lock().remove(&id);
                    });
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ProcessGroupChanged(change) = evt {
            if change.get_group() != state.args.group {
                return Ok(());
            }
            match change {
                GroupChangeMessage::Join(_, _, cells) => {
                    join_cells(&state.args.table, cells);
                    // Ping the newcomer now rather than at the next tick.
                    let _ = myself.cast(RouterMsg::Tick);
                }
                GroupChangeMessage::Leave(_, _, cells) => {
                    for cell in cells {
                        tracing::info!(member = %cell.get_id(), "member left");
                        state.args.table.leave(cell.get_id());
                    }
                }
            }
        }
        Ok(())
    }
}

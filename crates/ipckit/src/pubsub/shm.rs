//! PLACEHOLDER: replaced by the real implementation on its branch.

use std::os::fd::BorrowedFd;

use super::TopicConfig;
use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::meta::Message;
use crate::options::Options;
use crate::wait::{Got, Wait};

fn todo_err(ep: &Endpoint) -> Error {
    Error::new(ErrorKind::Unsupported, "pubsub", ep, "not implemented yet")
}

#[derive(Debug)]
pub(crate) struct ShmPublisher {
    name: String,
}

impl ShmPublisher {
    pub(crate) fn bind(ep: &Endpoint, _opts: &Options, _topic: TopicConfig) -> Result<Self> {
        Err(todo_err(ep))
    }
    /// `Ok(false)`: not published within `wait`.
    pub(crate) fn publish(&mut self, _msg: &[u8], _wait: Wait) -> Result<bool> {
        Ok(false)
    }
    pub(crate) fn subscribers(&mut self) -> usize {
        0
    }
    /// `Ok(false)`: not that many within `wait`.
    pub(crate) fn wait_for_subscribers(&mut self, _n: usize, _wait: Wait) -> Result<bool> {
        Ok(false)
    }
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
    pub(crate) fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
}

#[derive(Debug)]
pub(crate) struct ShmSubscriber {
    name: String,
}

impl ShmSubscriber {
    pub(crate) fn connect(ep: &Endpoint, _opts: &Options, _history: u64, _wait: Wait) -> Result<Self> {
        Err(todo_err(ep))
    }
    pub(crate) fn recv(&mut self, _wait: Wait) -> Result<Got<Message>> {
        Ok(Got::NotYet)
    }
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
    pub(crate) fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

//! The control plane's own CPU time (kube-apiserver and etcd, each from its
//! `process_cpu_seconds_total`), so that a scenario can say how much work
//! its requests cost the server, beside how long they took: on a machine
//! whose cores the server and the operator share, that tells a server-bound
//! run from one the operator holds back.

use kube::Client;

use super::cluster::sum_series;

/// CPU seconds each part of the control plane has used so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerCpu {
    pub apiserver: f64,
    /// None when no etcd is reachable (a cluster of someone else's).
    pub etcd: Option<f64>,
}

impl ServerCpu {
    /// What was used between `before` and this reading.
    pub fn since(&self, before: &ServerCpu) -> ServerCpu {
        ServerCpu {
            apiserver: self.apiserver - before.apiserver,
            etcd: self.etcd.zip(before.etcd).map(|(now, then)| now - then),
        }
    }

    /// Both parts together (the API server alone when etcd is not read).
    pub fn total(&self) -> f64 {
        self.apiserver + self.etcd.unwrap_or_default()
    }

    /// "12.3 s (kube-apiserver 10.1 s, etcd 2.2 s)".
    pub fn describe(&self) -> String {
        match self.etcd {
            Some(etcd) => format!(
                "{:.1} s (kube-apiserver {:.1} s, etcd {etcd:.1} s)",
                self.total(),
                self.apiserver
            ),
            None => format!("{:.1} s (kube-apiserver; etcd not read)", self.apiserver),
        }
    }
}

/// A reading now; None when the API server's metrics cannot be read.
pub async fn read(admin: &Client) -> Option<ServerCpu> {
    let request = http::Request::get("/metrics").body(Vec::new()).ok()?;
    let text = admin.request_text(request).await.ok()?;
    Some(ServerCpu {
        apiserver: cpu_seconds(&text)?,
        etcd: etcd_cpu().await,
    })
}

async fn etcd_cpu() -> Option<f64> {
    let endpoint = std::env::var("MODELGATE_ETCD").ok()?;
    let text = reqwest::get(format!("{endpoint}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    cpu_seconds(&text)
}

fn cpu_seconds(metrics: &str) -> Option<f64> {
    metrics
        .lines()
        .any(|l| l.starts_with("process_cpu_seconds_total "))
        .then(|| sum_series(metrics, "process_cpu_seconds_total ", &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_process_cpu_line_alone() {
        let text = "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\nprocess_cpu_seconds_total_other 3\n";
        assert_eq!(cpu_seconds(text), Some(12.5));
        assert_eq!(cpu_seconds("go_goroutines 4\n"), None);
    }

    #[test]
    fn a_difference_keeps_etcd_only_when_both_readings_have_it() {
        let before = ServerCpu {
            apiserver: 10.0,
            etcd: Some(1.0),
        };
        let after = ServerCpu {
            apiserver: 25.0,
            etcd: Some(4.0),
        };
        let used = after.since(&before);
        assert_eq!(
            (used.apiserver, used.etcd, used.total()),
            (15.0, Some(3.0), 18.0)
        );
        let unread = ServerCpu {
            apiserver: 25.0,
            etcd: None,
        }
        .since(&before);
        assert_eq!((unread.etcd, unread.total()), (None, 15.0));
    }
}

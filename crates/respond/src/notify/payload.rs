//! What each kind of target is sent: Slack Block Kit, a Teams Adaptive Card, a PagerDuty Events v2
//! event, or the notification itself (signed) for a generic webhook.
//!
//! Alert titles, summaries and action targets come from attacker-controlled data. Slack parses
//! `&`, `<` and `>` as control characters (mentions such as `<!channel>`, links), so those are
//! escaped; Teams renders Markdown in `TextBlock`s, so untrusted text goes in `TextRun`s, which
//! it shows as typed. Every text is cut to the limit the service documents, and single-line
//! fields lose their line breaks, so a title cannot fake extra lines of the message.

use aluskort_config::NotifyKind;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::Notification;

/// Name of the header that carries the generic webhook's signature.
pub const SIGNATURE_HEADER: &str = "X-Aluskort-Signature";

/// Proposed actions shown before the rest are summed up as "and N more".
const MAX_ACTION_LINES: usize = 20;

/// The body and extra headers of one notification request.
#[derive(Debug)]
pub(crate) struct Request {
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

/// The request `notification` becomes for a target of this kind.
pub(crate) fn request(kind: &NotifyKind, notification: &Notification) -> Result<Request, String> {
    let json = |value: Value| serde_json::to_vec(&value).map_err(|error| format!("notification body: {error}"));
    match kind {
        NotifyKind::Slack { .. } => Ok(Request { body: json(slack(notification))?, headers: Vec::new() }),
        NotifyKind::Teams { .. } => Ok(Request { body: json(teams(notification))?, headers: Vec::new() }),
        NotifyKind::PagerDuty { routing_key, .. } => {
            Ok(Request { body: json(pagerduty(notification, routing_key.expose()))?, headers: Vec::new() })
        }
        NotifyKind::Webhook { secret, .. } => {
            let body = serde_json::to_vec(notification).map_err(|error| format!("notification body: {error}"))?;
            let mut headers = vec![("X-Aluskort-Event", one_line(&notification.event_type, 100))];
            if let Some(secret) = secret {
                headers.push((SIGNATURE_HEADER, signature(secret.expose(), &body)));
            }
            Ok(Request { body, headers })
        }
    }
}

/// `sha256=<hex HMAC-SHA256 of body keyed with secret>`, the value of [`SIGNATURE_HEADER`].
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length (a long one is hashed first), so this never fails.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Slack incoming webhook: `{"text": fallback, "blocks": [...]}`; Slack answers `200 ok`.
/// <https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks>; escaping:
/// <https://api.slack.com/reference/surfaces/formatting#escaping>; limits (header 150 characters,
/// section text 3,000, at most 10 fields of 2,000): <https://api.slack.com/reference/block-kit/blocks>.
fn slack(notification: &Notification) -> Value {
    let headline = headline(notification);
    let title = mrkdwn(&one_line(&notification.alert_title, 500), 500);
    let mut fields = vec![
        slack_field("Alert", &title),
        slack_field("Severity", severity(&notification.severity)),
        slack_field("Tenant", &mrkdwn(&one_line(&notification.tenant_id, 200), 300)),
        slack_field("Investigation", &mrkdwn(&one_line(&notification.investigation_id, 200), 300)),
    ];
    if let Some(approval) = &notification.approval_id {
        fields.push(slack_field("Approval", &mrkdwn(&one_line(approval, 200), 300)));
    }
    if let Some(deadline) = deadline(notification) {
        fields.push(slack_field("Decide by", &deadline));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": cut(&headline, 150)}}),
        json!({"type": "section", "fields": fields}),
    ];
    let summary = mrkdwn(&multi_line(&notification.summary), 3000);
    if !summary.trim().is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": summary}}));
    }
    if !notification.actions.is_empty() {
        let lines: Vec<String> = action_lines(&notification.actions).iter().map(|line| format!("• {}", mrkdwn(line, 500))).collect();
        let text = cut(&format!("*Proposed actions*\n{}", lines.join("\n")), 3000);
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    if let Some(link) = link(notification).filter(|link| !link.contains('|')) {
        // A link in mrkdwn rather than a button: a button would need the Slack app to accept interactions.
        let text = format!("<{}|Open in ALUSKORT>", mrkdwn(link, 2900));
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}));
    }
    json!({"text": cut(&format!("{headline}: {title}"), 3000), "blocks": blocks})
}

fn slack_field(name: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": cut(&format!("*{name}*\n{value}"), 2000)})
}

/// Microsoft Teams incoming webhook (Workflows or the older connector): a `message` with one
/// Adaptive Card attachment.
/// <https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using#send-adaptive-cards-using-an-incoming-webhook>;
/// `RichTextBlock`/`TextRun` (plain text, no Markdown): <https://adaptivecards.io/explorer/RichTextBlock.html>.
fn teams(notification: &Notification) -> Value {
    let plain = |text: String| json!({"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": text}]});
    let fact = |title: &str, value: String| json!({"title": title, "value": value});
    let mut facts = vec![
        fact("Severity", severity(&notification.severity).to_owned()),
        fact("Tenant", id_text(&notification.tenant_id)),
        fact("Investigation", id_text(&notification.investigation_id)),
    ];
    if let Some(approval) = &notification.approval_id {
        facts.push(fact("Approval", id_text(approval)));
    }
    if let Some(deadline) = deadline(notification) {
        facts.push(fact("Decide by", deadline));
    }
    let mut body = vec![
        json!({"type": "TextBlock", "text": headline(notification), "weight": "Bolder", "size": "Medium", "wrap": true}),
        plain(one_line(&notification.alert_title, 500)),
        json!({"type": "FactSet", "facts": facts}),
    ];
    let summary = cut(&multi_line(&notification.summary), 3000);
    if !summary.trim().is_empty() {
        body.push(plain(summary));
    }
    if !notification.actions.is_empty() {
        body.push(json!({"type": "TextBlock", "text": "Proposed actions", "weight": "Bolder", "wrap": true}));
        body.extend(action_lines(&notification.actions).into_iter().map(|line| plain(format!("• {line}"))));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if let Some(link) = link(notification) {
        card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open in ALUSKORT", "url": link}]);
    }
    json!({
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": card}],
    })
}

/// PagerDuty Events API v2 alert event; PagerDuty answers `202 {"status": "success", ...}`.
/// <https://developer.pagerduty.com/docs/events-api-v2/trigger-events/> (summary at most 1,024
/// characters, dedup_key 255; severity `critical`, `error`, `warning` or `info`).
///
/// One approval is one PagerDuty alert (`dedup_key` from the approval, else the investigation):
/// reminders and escalations add to it, and a decision (`approval.granted`/`approval.denied`, when
/// the target subscribes to them) resolves it, so nobody stays paged for an approval already given.
fn pagerduty(notification: &Notification, routing_key: &str) -> Value {
    let subject = notification.approval_id.as_deref().unwrap_or(&notification.investigation_id);
    let dedup_key = cut(&format!("aluskort-{}", one_line(subject, 300)), 255);
    let decided = matches!(notification.event_type.as_str(), "approval.granted" | "approval.denied");
    if decided && notification.approval_id.is_some() {
        return json!({"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key});
    }
    let ours = severity(&notification.severity);
    // An executed response is news, not a page: `info` lets PagerDuty's urgency rules keep it quiet.
    let theirs = match ours {
        _ if notification.event_type.starts_with("response.") => "info",
        "critical" => "critical",
        "high" => "error",
        "low" | "informational" => "info",
        _ => "warning",
    };
    let summary = cut(&format!("[{ours}] {}: {}", headline_label(notification), one_line(&notification.alert_title, 1024)), 1024);
    let component = notification.event_type.split('.').next().unwrap_or("respond");
    let details = json!({
        "event_type": one_line(&notification.event_type, 100),
        "tenant_id": notification.tenant_id,
        "investigation_id": notification.investigation_id,
        "approval_id": notification.approval_id,
        "alert_title": cut(&notification.alert_title, 2000),
        "severity": ours,
        "summary": cut(&notification.summary, 8000),
        "decide_by": notification.deadline.map(|deadline| deadline.to_rfc3339()),
        "actions": action_lines(&notification.actions),
    });
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "client": "ALUSKORT",
        "payload": {
            "summary": summary,
            "source": "aluskort",
            "severity": theirs,
            "component": one_line(component, 100),
            "group": one_line(&notification.tenant_id, 255),
            "class": one_line(&notification.event_type, 100),
            "custom_details": details,
        },
    });
    if let Some(link) = link(notification) {
        event["client_url"] = json!(link);
        event["links"] = json!([{"href": link, "text": "Open in ALUSKORT"}]);
    }
    event
}

/// `Approval requested (critical)`: ours, never the alert's words.
fn headline(notification: &Notification) -> String {
    format!("{} ({})", headline_label(notification), severity(&notification.severity))
}

fn headline_label(notification: &Notification) -> String {
    match notification.event_type.as_str() {
        "approval.requested" => "Approval requested".to_owned(),
        "approval.reminder" => "Approval reminder".to_owned(),
        "approval.escalated" => "Approval escalated".to_owned(),
        "approval.timed_out" => "Approval timed out".to_owned(),
        "approval.granted" => "Approval granted".to_owned(),
        "approval.denied" => "Approval denied".to_owned(),
        "response.executed" => "Response executed".to_owned(),
        other => one_line(other, 60),
    }
}

/// One of our severities; anything else is shown as `unknown`.
fn severity(severity: &str) -> &'static str {
    match severity.trim().to_ascii_lowercase().as_str() {
        "critical" => "critical",
        "high" => "high",
        "medium" => "medium",
        "low" => "low",
        "informational" | "info" => "informational",
        _ => "unknown",
    }
}

fn deadline(notification: &Notification) -> Option<String> {
    notification.deadline.map(|deadline| deadline.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// The link, when it is an http(s) URL a chat service will accept.
fn link(notification: &Notification) -> Option<&str> {
    notification.link.as_deref().filter(|link| {
        (link.starts_with("https://") || link.starts_with("http://"))
            && link.len() <= 2000
            && !link.chars().any(|c| c.is_whitespace() || c.is_control())
    })
}

/// Identifiers are ours, but are still kept to one short line.
fn id_text(id: &str) -> String {
    one_line(id, 200)
}

/// The proposed actions, one line each, at most [`MAX_ACTION_LINES`] and then a count of the rest.
fn action_lines(actions: &[String]) -> Vec<String> {
    let mut lines: Vec<String> = actions.iter().take(MAX_ACTION_LINES).map(|action| one_line(action, 300)).collect();
    if actions.len() > MAX_ACTION_LINES {
        lines.push(format!("and {} more", actions.len() - MAX_ACTION_LINES));
    }
    lines
}

/// `text` on one line (line breaks and other control characters become spaces), at most `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    cut(flat.trim(), max)
}

/// `text` with line breaks kept and other control characters removed.
fn multi_line(text: &str) -> String {
    text.chars().filter(|c| *c == '\n' || !c.is_control()).collect::<String>().trim().to_owned()
}

/// At most `max` characters, ending in `…` when something was cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `text` escaped for Slack mrkdwn and cut to at most `max` characters without splitting an entity.
fn mrkdwn(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    let total: usize = text.chars().map(|c| escape(c).map_or(1, str::len)).sum();
    let budget = if total <= max { max } else { max.saturating_sub(1) };
    for c in text.chars() {
        let piece = escape(c);
        let width = piece.map_or(1, str::len);
        if count + width > budget {
            out.push('…');
            return out;
        }
        match piece {
            Some(entity) => out.push_str(entity),
            None => out.push(c),
        }
        count += width;
    }
    out
}

fn escape(c: char) -> Option<&'static str> {
    match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn notification() -> Notification {
        Notification {
            event_type: "approval.requested".to_owned(),
            tenant_id: "acme".to_owned(),
            investigation_id: "inv-1".to_owned(),
            approval_id: Some("apr-1".to_owned()),
            alert_title: "Beacon to <!channel> & <http://evil.example|click>\n*Approved:* yes".to_owned(),
            severity: "High".to_owned(),
            summary: "C2 traffic from host-7.\nIsolate it.".to_owned(),
            deadline: Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().expect("valid date")),
            actions: vec!["defender.isolate_machine host-7".to_owned()],
            link: Some("https://aluskort.example/investigations/inv-1".to_owned()),
        }
    }

    #[test]
    fn slack_escapes_control_characters_and_keeps_titles_on_one_line() {
        let body = slack(&notification());
        let text = body["text"].as_str().expect("fallback text");
        assert!(text.contains("&lt;!channel&gt; &amp; &lt;http://evil.example|click&gt;"), "{text}");
        assert!(!text.contains('\n'), "a title cannot add lines: {text}");
        let rendered = body.to_string();
        assert!(!rendered.contains("<!channel>") && !rendered.contains("<http://evil"), "{rendered}");
        assert!(rendered.contains("<https://aluskort.example/investigations/inv-1|Open in ALUSKORT>"));
    }

    #[test]
    fn escaping_never_splits_an_entity_and_respects_the_limit() {
        let text = "&".repeat(100);
        let escaped = mrkdwn(&text, 12);
        assert_eq!(escaped, "&amp;&amp;…");
        assert!(escaped.chars().count() <= 12);
        assert_eq!(mrkdwn("a<b", 10), "a&lt;b");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(one_line(" a\r\nb\t", 10), "a  b");
    }

    #[test]
    fn teams_puts_untrusted_text_in_text_runs() {
        let body = teams(&notification());
        let card = &body["attachments"][0]["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["body"][1]["type"], "RichTextBlock");
        assert_eq!(card["body"][1]["inlines"][0]["text"], "Beacon to <!channel> & <http://evil.example|click> *Approved:* yes");
        assert_eq!(card["actions"][0]["url"], "https://aluskort.example/investigations/inv-1");
    }

    #[test]
    fn pagerduty_maps_severity_and_resolves_on_a_decision() {
        let event = pagerduty(&notification(), "k");
        assert_eq!(event["payload"]["severity"], "error", "high -> error");
        assert_eq!(event["dedup_key"], "aluskort-apr-1");
        let mut long = notification();
        long.alert_title = "x".repeat(5000);
        let summary = pagerduty(&long, "k")["payload"]["summary"].as_str().map(|s| s.chars().count());
        assert_eq!(summary, Some(1024));
        let mut executed = notification();
        executed.event_type = "response.executed".to_owned();
        assert_eq!(pagerduty(&executed, "k")["payload"]["severity"], "info", "an executed response does not page");
        let mut granted = notification();
        granted.event_type = "approval.granted".to_owned();
        assert_eq!(pagerduty(&granted, "k"), json!({"routing_key": "k", "event_action": "resolve", "dedup_key": "aluskort-apr-1"}));
    }

    #[test]
    fn many_actions_are_summed_up() {
        let actions: Vec<String> = (0..25).map(|i| format!("action {i}")).collect();
        let lines = action_lines(&actions);
        assert_eq!(lines.len(), MAX_ACTION_LINES + 1);
        assert_eq!(lines.last().map(String::as_str), Some("and 5 more"));
    }

    #[test]
    fn signature_is_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

# frozen_string_literal: true

require_relative "../runtime/base"
require_relative "../runtime/notify"

# The parent of the push and SMS workers (shared/WORKERS.md, "Ruby: notifications"). It
# defines no `perform`, so it is not announced as a worker. It holds the one push path
# and the one SMS path that every notification worker goes through, so preferences,
# device clean-up and provider errors are handled alike whoever triggers them.
#
# A worker with several recipients builds one outcome per recipient ("sent", "skipped"
# or "failed") and ends with `finish_fanout`.
class NotificationWorker < SimbiWorker::Base
  Notify = SimbiWorker::Notify

  PUSH_TITLES = {
    "messages" => "New message", "compliments" => "New compliment",
    "favors" => "Someone asked for your help", "matches" => "New match",
    "followers" => "New follower", "leaderboard" => "Leaderboard", "account" => "Simbi"
  }.freeze
  PUSH_CATEGORIES = PUSH_TITLES.keys.freeze

  DEVICES_SQL = "SELECT token, provider FROM devices WHERE user_id = :user_id ORDER BY id"
  DELETE_DEVICE_SQL = "DELETE FROM devices WHERE token = :token"
  # A bound false is 0 on SQLite and false on PostgreSQL (the db service binds through
  # SQLAlchemy), where a literal would need per-dialect spelling.
  CLEAR_SMS_OPT_IN_SQL = "UPDATE users SET sms_opt_in = :sms_opt_in WHERE id = :id"

  MESSAGE_SQL = "SELECT m.id, m.talk_id, m.sender_id, m.body, " \
                "u.first_name AS sender_first_name " \
                "FROM messages m JOIN users u ON u.id = m.sender_id WHERE m.id = :id"
  # The same columns as Notify::USER_SQL, so a row serves push_to and send_sms.
  RECIPIENTS_SQL = "SELECT u.id, u.first_name, u.last_name, u.phone, u.sms_opt_in, " \
                   "u.deleted_at FROM talk_participants p JOIN users u ON u.id = p.user_id " \
                   "WHERE p.talk_id = :talk_id AND p.user_id <> :sender_id ORDER BY u.id"

  # sms.send errors about the recipient that no retry can fix (docs/protocol.md).
  SMS_RECIPIENT_ERRORS = %w[InvalidNumber Unsubscribed].freeze

  # The provider will never deliver an SMS to this recipient: the job fails permanently.
  class SmsRefused < SimbiWorker::PermanentError
    attr_reader :provider_class

    def initialize(provider_class, message)
      super(message)
      @provider_class = provider_class
    end
  end

  private

  # -- push ---------------------------------------------------------------------------

  # Pushes to every device of `user` (a Notify::USER_SQL row, nil when there is none).
  # A reason not to push is a "skipped" outcome, not a skip!: for a worker with several
  # recipients, one opt-out must not silence the others.
  def push_to(user_id, user, category, message, data)
    reason = gone_reason(user_id, user) || push_opt_out_reason(user_id, category)
    return skipped(user_id, reason) if reason

    devices = host.call("db", "query", { sql: DEVICES_SQL, params: { user_id: } })["rows"]
    return skipped(user_id, "user #{user_id} has no devices") if devices.empty?

    devices = devices.map { |row| { token: row["token"], provider: row["provider"] } }
    reply = host.call("push", "send", { devices:, title: PUSH_TITLES.fetch(category),
                                        body: message, data: })
    removed = remove_unregistered(devices, reply["unregistered"])

    { "user_id" => user_id, "status" => "sent", "devices" => devices.size,
      "sent" => reply["sent"], "removed_devices" => removed.size }
  end

  def push_opt_out_reason(user_id, category)
    return nil if Notify.enabled?(host, user_id, "push", category)

    "user #{user_id} turned off #{category} push notifications"
  end

  # Only tokens we sent are deleted, one statement each: the db service binds named
  # scalars, so there is no list parameter for an IN (...).
  def remove_unregistered(devices, unregistered)
    tokens = Array(unregistered).map { |entry| entry.is_a?(Hash) ? entry["token"] : entry }
    tokens &= devices.map { |device| device[:token] }

    tokens.each do |token|
      host.call("db", "execute", { sql: DELETE_DEVICE_SQL, params: { token: } })
    end
    log("removed #{tokens.size} device(s) the push provider reports unregistered") if tokens.any?
    tokens
  end

  def require_push_category!(category)
    return if PUSH_CATEGORIES.include?(category)

    raise SimbiWorker::PermanentError, "unknown push category #{category.inspect}; " \
                                       "known: #{PUSH_CATEGORIES.join(', ')}"
  end

  # push.send takes `data` as an object of strings (docs/protocol.md): numbers and
  # booleans become strings, null values are left out, anything nested is refused.
  def push_data(data)
    return {} if data.nil?
    unless data.is_a?(Hash)
      raise SimbiWorker::PermanentError, "data must be an object, got #{describe(data)}"
    end

    data.each_with_object({}) do |(key, value), strings|
      next if value.nil?

      strings[key.to_s] = push_data_value(key, value)
    end
  end

  def push_data_value(key, value)
    case value
    when String then value
    when Integer, Float, true, false then value.to_s
    else
      raise SimbiWorker::PermanentError, "data.#{key} must be a string, number or boolean " \
                                         "(push data is flat), got #{describe(value)}"
    end
  end

  # -- SMS ----------------------------------------------------------------------------

  # Why `user` gets no SMS, or nil.
  def sms_skip_reason(user_id, user)
    gone = gone_reason(user_id, user)
    return gone if gone
    return "user #{user_id} has no phone number" if phone_number(user).empty?

    "user #{user_id} has not opted in to SMS" unless Notify.flag?(user["sms_opt_in"])
  end

  # Sends one SMS. InvalidNumber and Unsubscribed become SmsRefused (permanent), after an
  # Unsubscribed has cleared the opt-in. Every other host error propagates unchanged:
  # RateLimited and ProviderUnavailable stay retryable with the host's
  # retry_after_seconds, ProviderRejected stays permanent.
  def send_sms(user, body)
    host.call("sms", "send", { to: phone_number(user), body: })
  rescue SimbiWorker::HostError => e
    raise unless SMS_RECIPIENT_ERRORS.include?(e.klass)

    clear_sms_opt_in(user["id"]) if e.klass == "Unsubscribed"
    raise SmsRefused.new(e.klass, "SMS to user #{user['id']} refused (#{e.klass}): #{e.message}")
  end

  def clear_sms_opt_in(user_id)
    host.call("db", "execute", { sql: CLEAR_SMS_OPT_IN_SQL,
                                 params: { sms_opt_in: false, id: user_id } })
    log("user #{user_id} unsubscribed from SMS at the provider; opt-in cleared")
  end

  # E.164 as typed in a profile often carries spaces, dashes or brackets.
  def phone_number(user)
    user["phone"].to_s.gsub(/[\s().-]/, "")
  end

  # -- shared -------------------------------------------------------------------------

  def gone_reason(user_id, user)
    return "user #{user_id} does not exist" if user.nil?

    "user #{user_id} is deleted" if Notify.deleted?(user)
  end

  def load_message(message_id)
    host.call("db", "query", { sql: MESSAGE_SQL, params: { id: message_id } })["rows"].first
  end

  # Every participant of the message's talk but its sender, as Notify::USER_SQL rows.
  def talk_recipients(message)
    params = { talk_id: message["talk_id"], sender_id: message["sender_id"] }
    host.call("db", "query", { sql: RECIPIENTS_SQL, params: })["rows"]
  end

  # A Redis throttle key is a lease while its send is in flight: "pending" for
  # LEASE_SECONDS, so that a run killed mid-send (SIGKILL, timeout: no rescue runs) does
  # not hold the key for the whole window; "sent" (or "failed", refused for good) for the
  # window once the send is over.
  LEASE_SECONDS = 120

  # Takes `key` (SET "pending" NX EX LEASE_SECONDS): :claimed when this run holds it now,
  # else what the key says, "sent" or "failed" (the window's notification is settled).
  # A pending key is another run sending right now, or one that died within the lease:
  # RetryableError, and the retry finds it settled or lapsed. redis-py replies true for
  # OK and nil when NX refused.
  def claim_lease(key)
    params = { command: "SET", keys: [key], args: ["pending", "NX", "EX", LEASE_SECONDS] }
    return :claimed unless host.call("redis", "call", params).nil?

    state = host.call("redis", "call", { command: "GET", keys: [key], args: [] })
    return state if %w[sent failed 1].include?(state)

    raise SimbiWorker::RetryableError, "#{key} is being sent by another run; retrying"
  end

  # Ends the lease: `state` ("sent", "failed") for the window. The send is over whatever
  # happens here, so a failure is only logged (the lease then lapses by itself).
  def settle_lease(key, state, window_seconds)
    host.call("redis", "call", { command: "SET", keys: [key], args: [state, "EX", window_seconds] })
  rescue StandardError => e
    log("could not record #{key} as #{state}: #{e.class}: #{e.message}")
  end

  # Called while another error propagates, which must stay the job's error: a release
  # that fails too is only logged (the key then expires by itself).
  def release_quietly(key)
    host.call("redis", "call", { command: "DEL", keys: [key], args: [] })
  rescue StandardError => e
    log("could not release #{key}: #{e.class}: #{e.message}")
  end

  # The outcome of one recipient of a fan-out: the block's, or "failed" when it raised a
  # permanent error, so one recipient's bad address or config does not silence the
  # others. A retryable error is kept as a "retry" outcome: finish_fanout raises the
  # first one once everyone was tried, and the job's retry finds those already reached
  # settled by their claims.
  def recipient_outcome(user_id)
    yield
  rescue StandardError => e
    return failed(user_id, e) if permanent?(e)

    log("recipient #{user_id}: retryable #{e.class}: #{e.message}; trying the others first")
    { "user_id" => user_id, "status" => "retry", "exception" => e }
  end

  def permanent?(error)
    return !error.retryable? if error.is_a?(SimbiWorker::HostError)

    error.is_a?(SimbiWorker::PermanentError)
  end

  def skipped(user_id, reason)
    { "user_id" => user_id, "status" => "skipped", "reason" => reason }
  end

  def failed(user_id, error)
    provider_class = error.respond_to?(:provider_class) ? error.provider_class : nil
    provider_class ||= error.respond_to?(:klass) ? error.klass : error.class.name
    { "user_id" => user_id, "status" => "failed", "error" => provider_class,
      "message" => error.message }
  end

  # The value of a job with several recipients: {"sent", "skipped", "failed"}, each a list
  # of outcomes. Nobody reached and nothing failed is a skip of the whole job; every
  # recipient failed permanently is a permanent failure.
  # A retryable failure of any recipient retries the whole job, after the others were tried.
  def finish_fanout(outcomes, subject)
    skip!("#{subject}: nobody else to notify") if outcomes.empty?
    retry_outcome = outcomes.find { |o| o["status"] == "retry" }
    if retry_outcome
      log_partial(by_status(outcomes))
      raise retry_outcome["exception"]
    end

    by_status = by_status(outcomes)

    skipped, failed = by_status.values_at("skipped", "failed")
    skip!("#{subject}: #{reasons(skipped)}") if skipped.size == outcomes.size
    if failed.size == outcomes.size
      raise SimbiWorker::PermanentError, "#{subject}: every recipient failed: #{reasons(failed)}"
    end

    log_partial(by_status)
    by_status
  end

  def by_status(outcomes)
    %w[sent skipped failed].to_h do |status|
      [status, outcomes.select { |o| o["status"] == status }.map { |o| o.except("status") }]
    end
  end

  def log_partial(by_status)
    by_status["skipped"].each { |o| log("skip recipient: #{o['reason']}") }
    by_status["failed"].each { |o| log("recipient #{o['user_id']} failed: #{o['message']}") }
  end

  def reasons(outcomes)
    outcomes.map { |o| o["reason"] || "user #{o['user_id']}: #{o['message']}" }.join("; ")
  end

  def require_id!(name, value)
    return if value.is_a?(Integer) && value.positive? && value <= SimbiWorker::MAX_ID

    limit = value.is_a?(Integer) && value.positive? ? " no larger than 2**63-1" : ""
    raise SimbiWorker::PermanentError, "#{name} must be a positive integer id#{limit}, " \
                                       "got #{describe(value)}"
  end

  def require_text!(name, value)
    return if value.is_a?(String) && !value.strip.empty?

    raise SimbiWorker::PermanentError, "#{name} must be a non-empty String, " \
                                       "got #{describe(value)}"
  end

  def describe(value)
    text = value.inspect
    text = "#{text[0, 80]}…" if text.length > 80
    "#{value.class} #{text}"
  end
end

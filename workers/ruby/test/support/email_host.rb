# frozen_string_literal: true

require "json"
require_relative "../../runtime/errors"

# A host for the email worker tests: each test registers answers for (service, method,
# matcher) and the host records every call. A matcher is a Regexp tried on the SQL of a
# db call, or a Proc given the params; the newest matching rule wins, so a test can
# override the defaults. An answer is a value, a Proc given the params, or an Exception
# to raise. Values go through JSON, as the real host's do: string keys only.
#
# Defaults: no preference rows (everything enabled), notifications_sent claims kept in
# `claims` (a second claim of a key gets rowcount 0, as ON CONFLICT DO NOTHING gives),
# mail.send and jobs.enqueue succeed, and mail.unsubscribe_url gives a link with an "&" in
# it so that tests can see it escaped in HTML and raw in text.
class EmailHost
  Rule = Struct.new(:service, :method_name, :matcher, :answer)

  attr_reader :calls, :claims

  # key => {"created_at", "sent_at"}; a test backdates created_at to age a lease.
  def claim_rows
    @claim_rows ||= {}
  end

  # A claim taken `seconds` ago by a run that then died: no sent_at, never released.
  def stale_claim(key, seconds_ago)
    @claims << key unless @claims.include?(key)
    claim_rows[key] = { "created_at" => EmailHost.now_string(-seconds_ago), "sent_at" => nil }
  end

  def self.now_string(offset_seconds = 0)
    (Time.now.utc + offset_seconds).strftime("%Y-%m-%d %H:%M:%S+00:00")
  end

  def initialize
    @rules = []
    @calls = []
    @claims = []
    defaults
  end

  def on(service, method_name, matcher = nil, answer = nil, &block)
    @rules.unshift(Rule.new(service, method_name, matcher, block || answer))
    self
  end

  # db.query rows for SQL that matches `pattern`.
  def rows(pattern, rows = nil, &block)
    on("db", "query", pattern) { |params| { "rows" => block ? block.call(params) : rows } }
  end

  def call(service, method_name, params = {})
    @calls << [service, method_name, params]
    rule = find_rule(service, method_name, params)

    answer = rule.answer.respond_to?(:call) ? rule.answer.call(params) : rule.answer
    raise answer if answer.is_a?(Exception)

    JSON.parse(JSON.generate(answer))
  end

  def mails
    params_of("mail", "send")
  end

  def enqueued
    params_of("jobs", "enqueue")
  end

  # The user ids and the subjects of the mails, in the order sent.
  def mail_recipients
    mails.map { |mail| mail[:user_id] }
  end

  def mail_subjects
    mails.map { |mail| mail[:subject] }
  end

  # The position of the first call that `block` picks, to check the order of two calls.
  def position(&)
    @calls.index(&)
  end

  def executed(pattern = //)
    params_of("db", "execute").select { |params| params[:sql].match?(pattern) }
  end

  def params_of(service, method_name)
    @calls.select { |s, m, _| s == service && m == method_name }.map(&:last)
  end

  def self.unsubscribe_url(user_id, category)
    "https://simbi.test/unsubscribe?user=#{user_id}&category=#{category}&sig=abc"
  end

  private

  def find_rule(service, method_name, params)
    rule = @rules.find do |r|
      r.service == service && r.method_name == method_name && match?(r, params)
    end
    rule or raise "EmailHost: unexpected call #{service}.#{method_name} #{params.inspect}"
  end

  def match?(rule, params)
    case rule.matcher
    when nil then true
    when Regexp then params[:sql].to_s.match?(rule.matcher)
    else rule.matcher.call(params)
    end
  end

  # notifications_sent as the worker sees it: `claims` lists the keys in the order
  # claimed, `claim_rows` holds each one's created_at (a UTC string, as the cutoff) and
  # sent_at.
  def claim(params)
    key = params[:params][:dedupe_key]
    return 0 if @claims.include?(key)

    @claims << key
    claim_rows[key] = { "created_at" => EmailHost.now_string, "sent_at" => nil }
    1
  end

  def release(params)
    key = params[:params][:dedupe_key]
    return 0 unless claim_rows.dig(key, "sent_at").nil? && @claims.delete(key)

    claim_rows.delete(key)
    1
  end

  def claim_state(params)
    row = claim_rows[params[:params][:dedupe_key]]
    row ? [row.slice("sent_at")] : []
  end

  def take_over(params)
    row = claim_rows[params[:params][:dedupe_key]]
    return 0 unless row && row["sent_at"].nil? && row["created_at"] < params[:params][:cutoff]

    row["created_at"] = EmailHost.now_string
    1
  end

  def mark_sent(params)
    row = claim_rows[params[:params][:dedupe_key]]
    return 0 unless row

    row["sent_at"] = EmailHost.now_string
    1
  end

  def defaults
    mail_count = 0
    job_count = 0
    on("mail", "unsubscribe_url") do |p|
      { "url" => EmailHost.unsubscribe_url(p[:user_id], p[:category]) }
    end
    on("mail", "send") { { "message_id" => "mail-#{mail_count += 1}", "delivered" => "outbox" } }
    on("jobs", "enqueue") { { "job_id" => "job-#{job_count += 1}" } }
    on("db", "execute", /INSERT INTO notifications_sent/) { |p| { "rowcount" => claim(p) } }
    on("db", "execute", /DELETE FROM notifications_sent/) { |p| { "rowcount" => release(p) } }
    on("db", "execute", /SET created_at = CURRENT_TIMESTAMP/) { |p| { "rowcount" => take_over(p) } }
    on("db", "execute", /SET sent_at = CURRENT_TIMESTAMP/) { |p| { "rowcount" => mark_sent(p) } }
    rows(/SELECT sent_at FROM notifications_sent/) { |p| claim_state(p) }
    on("db", "execute", /INSERT INTO suggestion_history/) do |p|
      { "rowcount" => p[:params].size - 1 }
    end
    rows(/FROM notification_preferences/, [])
  end
end

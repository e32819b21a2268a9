# frozen_string_literal: true

require "stringio"
require_relative "../../runtime/errors"
require_relative "../../runtime/runner"
require_relative "../../runtime/notify"
require_relative "../../workers/notification_worker"
require_relative "../../workers/notify_match_worker"
require_relative "../../workers/notify_new_follower_worker"

# A fake host for the notification workers: it records every call as
# [service, method, params] and answers from small in-memory tables, so a test states the
# app's records and then asserts both the calls and what they changed.
#
# - db.query/db.execute answer the workers' own SQL constants; any other SQL fails the
#   test, so a changed statement is noticed.
# - redis.call keeps strings with expiry on a clock the test moves (`advance`): SET with
#   NX and EX answers nil when the key is held, true otherwise (as redis-py does).
# - push.send and sms.send answer a delivered reply unless `on` replaces the answer with a
#   block, which may raise a HostError (see `host_error`).
class NotificationHost
  W = NotificationWorker
  N = SimbiWorker::Notify

  # The runner sets it around each job, as on the real host client.
  attr_accessor :job_id
  attr_reader :calls, :users, :devices, :preferences, :messages, :participants, :matches,
              :follows, :redis

  def initialize
    @calls = []
    @users = {}
    @devices = []
    @preferences = []
    @messages = {}
    @participants = []
    @matches = {}
    @follows = {}
    @redis = {}
    @now_seconds = 1_800_000_000
    @answers = {}
  end

  def self.host_error(klass, retryable:, retry_after_seconds: nil,
                      message: "#{klass} from provider")
    SimbiWorker::HostError.new(klass:, message:, retryable:, retry_after_seconds:)
  end

  # -- set-up ---------------------------------------------------------------------------

  def user(id, first_name, phone: nil, sms_opt_in: 0, deleted_at: nil)
    @users[id] = { "id" => id, "first_name" => first_name, "last_name" => "Doe",
                   "phone" => phone, "sms_opt_in" => sms_opt_in, "deleted_at" => deleted_at }
  end

  def device(user_id, token, provider = "fcm")
    @devices << { "user_id" => user_id, "token" => token, "provider" => provider }
  end

  def preference(user_id, channel, category, enabled)
    @preferences << { "user_id" => user_id, "channel" => channel, "category" => category,
                      "enabled" => enabled }
  end

  def talk(talk_id, *user_ids)
    user_ids.each { |id| @participants << { "talk_id" => talk_id, "user_id" => id } }
  end

  def message(id, talk_id, sender_id, body)
    @messages[id] = { "id" => id, "talk_id" => talk_id, "sender_id" => sender_id, "body" => body }
  end

  # Replaces the answer to "service.method" with the block's value (or what it raises).
  def on(service_method, &block)
    @answers[service_method] = block
  end

  def advance(seconds)
    @now_seconds += seconds
  end

  # -- what the workers did -------------------------------------------------------------

  def calls_to(service, method_name)
    @calls.select { |s, m, _| s == service && m == method_name }.map(&:last)
  end

  def executed
    calls_to("db", "execute")
  end

  # -- the host -------------------------------------------------------------------------

  def call(service, method_name, params = {})
    @calls << [service, method_name, params]
    custom = @answers["#{service}.#{method_name}"]
    return custom.call(params) if custom

    case [service, method_name]
    when %w[db query] then { "rows" => query(params[:sql], params[:params]) }
    when %w[db execute] then { "rowcount" => execute(params[:sql], params[:params]) }
    when %w[redis call] then redis_call(params[:command], params[:keys], params[:args])
    when %w[push send] then { "sent" => params[:devices].size, "unregistered" => [],
                              "delivered" => "outbox" }
    when %w[sms send] then { "sid" => "SM#{calls_to('sms', 'send').size}", "delivered" => "outbox" }
    else raise "NotificationHost: unexpected call #{service}.#{method_name}"
    end
  end

  private

  def query(sql, params)
    case sql
    when N::USER_SQL then [@users[params[:id]]].compact
    when N::PREFERENCE_SQL then preference_rows(params)
    when W::DEVICES_SQL then devices_of(params[:user_id])
    when W::MESSAGE_SQL then message_row(params[:id])
    when W::RECIPIENTS_SQL then recipients(params[:talk_id], params[:sender_id])
    when NotifyMatchWorker::MATCH_SQL then [@matches[params[:id]]].compact
    when NotifyNewFollowerWorker::FOLLOW_SQL then [@follows[params[:id]]].compact
    else raise "NotificationHost: unexpected query #{sql}"
    end
  end

  def execute(sql, params)
    case sql
    when W::DELETE_DEVICE_SQL
      before = @devices.size
      @devices.reject! { |d| d["token"] == params[:token] }
      before - @devices.size
    when W::CLEAR_SMS_OPT_IN_SQL
      return 0 unless @users[params[:id]]

      @users[params[:id]]["sms_opt_in"] = params[:sms_opt_in]
      1
    else raise "NotificationHost: unexpected statement #{sql}"
    end
  end

  def preference_rows(params)
    wanted = params.transform_keys(&:to_s)
    @preferences.select { |p| p.slice(*wanted.keys) == wanted }.map { |p| p.slice("enabled") }
  end

  def devices_of(user_id)
    @devices.select { |d| d["user_id"] == user_id }.map { |d| d.slice("token", "provider") }
  end

  def message_row(id)
    message = @messages[id]
    return [] unless message

    [message.merge("sender_first_name" => @users.fetch(message["sender_id"])["first_name"])]
  end

  def recipients(talk_id, sender_id)
    ids = @participants.select { |p| p["talk_id"] == talk_id }.map { |p| p["user_id"] }
    (ids - [sender_id]).sort.map { |id| @users.fetch(id) }
  end

  def redis_call(command, keys, args)
    key = keys.first
    @redis.delete(key) if @redis.key?(key) && @redis[key][:expires_at] <= @now_seconds
    case command
    when "SET" then redis_set(key, args)
    when "DEL" then @redis.delete(key) ? 1 : 0
    when "GET" then @redis.dig(key, :value)
    else raise "NotificationHost: unexpected Redis command #{command}"
    end
  end

  # SET key value [NX] [EX seconds]: enough for the once-per-window keys.
  def redis_set(key, args)
    value, *options = args
    return nil if options.include?("NX") && @redis.key?(key)

    ex = options.index("EX")
    expires_at = ex ? @now_seconds + Integer(options[ex + 1]) : Float::INFINITY
    @redis[key] = { value:, expires_at:, ttl_seconds: ex && Integer(options[ex + 1]) }
    true
  end
end

# Runs workers as the runner does, for tests that include it and set @host.
module NotificationJobs
  # [value, skip reason or nil, log text] of one job.
  def run_worker(klass, *args)
    worker = klass.new.bind(host: @host, job_id: "job-1")
    value = nil
    reason = nil
    _, log = capture_io do
      reason = catch(SimbiWorker::SKIP) do
        value = worker.perform(*args)
        nil
      end
    end
    [value, reason, log]
  end

  # The `done` message the real runner writes for the job (its error shape, retryable...).
  def done_message(worker_name, *args)
    output = StringIO.new
    runner = SimbiWorker::Runner.new(SimbiWorker::Protocol.new(StringIO.new, output), @host)
    capture_io do
      runner.run({ "type" => "job", "job_id" => "job-1", "worker" => worker_name,
                   "args" => args })
    end
    JSON.parse(output.string)
  end

  def host_error(...)
    NotificationHost.host_error(...)
  end
end

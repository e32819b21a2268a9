# frozen_string_literal: true

require_relative "../../runtime/base"
require_relative "../../runtime/email"
require_relative "email_host"

# What the email worker tests share: the people, a way to run a job as the runner does
# (value, or the skip reason), and the app URL set for each test.
module EmailJobs
  APP_URL = "https://simbi.example"
  USERS = {
    7 => { "id" => 7, "first_name" => "Ada", "last_name" => "Lovelace",
           "email" => "ada@example.com", "deleted_at" => nil },
    8 => { "id" => 8, "first_name" => "Grace", "last_name" => "Hopper",
           "email" => "grace@example.com", "deleted_at" => nil },
    9 => { "id" => 9, "first_name" => "Linus", "last_name" => "Torvalds",
           "email" => "linus@example.com", "deleted_at" => nil }
  }.freeze
  DELETED_AT = "2026-11-30T10:00:00+00:00"

  def setup
    @app_url_before = ENV.fetch("SIMBI_APP_URL", nil)
    ENV["SIMBI_APP_URL"] = APP_URL
    @host = EmailHost.new
    @host.rows(/FROM users WHERE id = :id/) { |p| [users[p[:params][:id]]].compact }
  end

  def teardown
    ENV["SIMBI_APP_URL"] = @app_url_before
  end

  # The people the users query sees; a test changes them before running the job.
  def users
    @users ||= USERS.transform_values(&:dup)
  end

  def delete_user(id)
    users[id]["deleted_at"] = DELETED_AT
  end

  def opt_out(user_id, category)
    @host.rows(lambda { |p|
      p[:sql].include?("FROM notification_preferences") &&
        p[:params] == { user_id:, channel: "email", category: }
    }, [{ "enabled" => 0 }])
  end

  # [value, skip reason] as the runner would see them.
  def run_worker(klass, *args)
    value = nil
    reason = catch(SimbiWorker::SKIP) do
      value = klass.new.bind(host: @host, job_id: "job-1").perform(*args)
      nil
    end
    [value, reason]
  end

  def assert_skipped(reason, klass, *args)
    value, skipped = run_worker(klass, *args)
    assert_equal reason, skipped, "expected a skip, got the value #{value.inspect}"
    assert_empty @host.mails, "a skipped job must not send mail"
  end

  def assert_permanent(message, klass, *args)
    error = assert_raises(SimbiWorker::PermanentError) { run_worker(klass, *args) }
    assert_equal message, error.message
    assert_empty @host.mails
  end

  def mail_to(user_id)
    mails = @host.mails.select { |mail| mail[:user_id] == user_id }
    assert_equal 1, mails.size, "expected one mail to user #{user_id}, got #{mails.size}"
    mails.first
  end

  def unsubscribe_url(user_id, category)
    EmailHost.unsubscribe_url(user_id, category)
  end

  # The unsubscribe link as each part must carry it: raw in text, escaped once in HTML.
  def assert_unsubscribe_link(mail, category)
    url = unsubscribe_url(mail[:user_id], category)
    assert_includes mail[:text], "Stop getting these emails: #{url}\n"
    assert_includes mail[:html], %(<a href="#{url.gsub('&', '&amp;')}")
    refute_includes mail[:html], "&amp;amp;"
    assert_equal false, mail[:transactional]
    assert_equal category, mail[:category]
  end
end

# frozen_string_literal: true

require "minitest/autorun"
require_relative "../workers/email_intro_worker"
require_relative "support/email_jobs"

# Each test tells one story and checks every field it cares about (tests are exempt
# from the length metrics in .rubocop.yml for the same reason).
# rubocop:disable Metrics/AbcSize

class TestEmailSendIntro < Minitest::Test
  include EmailJobs

  def test_the_first_step_sends_the_welcome_and_schedules_the_second_in_two_days
    value, skipped = run_worker(SendIntroWorker, 7, "first")

    assert_nil skipped
    assert_equal({ "step" => "first", "next_job_id" => "job-1" }, value)
    mail = mail_to(7)
    assert_equal "Welcome to Simbi, Ada", mail[:subject]
    assert_includes mail[:text], "Hi Ada,\n\nWelcome to Simbi!"
    assert_includes mail[:text], "https://simbi.example/services/new\n"
    assert_includes mail[:html], %(<a href="https://simbi.example/services/new">Offer a service</a>)
    assert_unsubscribe_link(mail, "intro")
    assert_equal [{ worker: "SendIntroWorker", args: [7, "second"], in_seconds: 172_800 }],
                 @host.enqueued
  end

  def test_the_second_step_schedules_the_third_in_five_days
    run_worker(SendIntroWorker, 7, "second")

    assert_equal "Ada, find something you need on Simbi", mail_to(7)[:subject]
    assert_equal [{ worker: "SendIntroWorker", args: [7, "third"], in_seconds: 432_000 }],
                 @host.enqueued
  end

  def test_the_third_step_ends_the_series
    value, = run_worker(SendIntroWorker, 7, "third")

    assert_equal({ "step" => "third", "next_job_id" => nil }, value)
    assert_includes mail_to(7)[:text], "https://simbi.example/users/7/edit"
    assert_empty @host.enqueued
  end

  def test_claims_the_step_before_sending_it
    run_worker(SendIntroWorker, 7, "first")

    claim = @host.executed(/INSERT INTO notifications_sent/).first
    assert_equal({ user_id: 7, kind: "intro", dedupe_key: "intro:7:first" }, claim[:params])
    assert_includes claim[:sql], "ON CONFLICT (dedupe_key) DO NOTHING"
    assert_operator(@host.position { |call| call[2].equal?(claim) },
                    :<, @host.position { |call| call[1] == "send" })
  end

  def test_a_second_run_of_the_same_step_sends_and_schedules_nothing
    run_worker(SendIntroWorker, 7, "first")
    @host.calls.clear

    value, skipped = run_worker(SendIntroWorker, 7, "first")
    assert_nil value
    assert_equal "intro step first was already sent to user 7", skipped
    assert_empty @host.mails
    assert_empty @host.enqueued
  end

  def test_another_step_or_user_is_not_blocked_by_a_sent_step
    run_worker(SendIntroWorker, 7, "first")
    run_worker(SendIntroWorker, 7, "second")
    run_worker(SendIntroWorker, 8, "first")

    assert_equal [7, 7, 8], @host.mail_recipients
  end

  def test_a_failed_send_gives_the_claim_back_so_the_retry_sends
    @host.on("mail", "send", nil, SimbiWorker::HostError.new(klass: "ProviderUnavailable",
                                                             message: "503", retryable: true))
    assert_raises(SimbiWorker::HostError) { run_worker(SendIntroWorker, 7, "first") }
    assert_empty @host.claims
    assert_empty @host.enqueued

    @host.on("mail", "send", nil, { "message_id" => "m", "delivered" => "outbox" })
    _, skipped = run_worker(SendIntroWorker, 7, "first")
    assert_nil skipped
    assert_equal 1, @host.enqueued.size
  end

  def test_a_failed_schedule_is_made_up_by_the_retry_without_a_second_email
    @host.on("jobs", "enqueue", nil, SimbiWorker::HostError.new(klass: "ConnectionError",
                                                                message: "redis", retryable: true))
    assert_raises(SimbiWorker::HostError) { run_worker(SendIntroWorker, 7, "first") }
    assert_equal 1, @host.mails.size

    @host.on("jobs", "enqueue", nil, { "job_id" => "job-9" })
    _, skipped = run_worker(SendIntroWorker, 7, "first")
    assert_equal "intro step first was already sent to user 7", skipped
    assert_equal 1, @host.mails.size
    assert_equal [7, "second"], @host.enqueued.last[:args]
  end

  def test_an_unknown_step_is_permanent_and_lists_the_steps
    assert_permanent 'unknown intro step "fourth"; the steps are: first, second, third',
                     SendIntroWorker, 7, "fourth"
    assert_empty @host.calls
  end

  def test_a_deleted_user_is_skipped_without_a_claim
    delete_user(7)

    assert_skipped "user 7 is deleted", SendIntroWorker, 7, "first"
    assert_empty @host.executed
    assert_empty @host.enqueued
  end

  def test_an_opt_out_of_intro_emails_stops_the_series
    opt_out(7, "intro")

    assert_skipped "user 7 opted out of intro emails", SendIntroWorker, 7, "first"
    assert_empty @host.claims
    assert_empty @host.enqueued
  end
end
# rubocop:enable Metrics/AbcSize

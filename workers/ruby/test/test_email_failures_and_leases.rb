# frozen_string_literal: true

require "minitest/autorun"
require "stringio"
require_relative "../workers/email_worker"
require_relative "../workers/email_intro_worker"
require_relative "../workers/email_suggestions_worker"
require_relative "support/email_jobs"
require_relative "support/email_database"

# rubocop:disable Metrics/AbcSize

# A comment's fan-out, the claim lease, ids and hostile names in the email workers.
class TestEmailFailuresAndLeases < Minitest::Test
  include EmailJobs

  def setup
    super
    @comment = { "id" => 60, "service_id" => 5, "user_id" => 9, "body" => "Hi",
                 "author_first_name" => "Linus", "owner_id" => 7, "service_title" => "Piano" }
    @host.rows(/FROM comments c/) { |p| p[:params][:id] == 60 ? [@comment] : [] }
    @host.rows(/SELECT user_id, MIN\(id\)/) { [{ "user_id" => 8, "first_comment_id" => 50 }] }
    @stderr_was = $stderr
    $stderr = StringIO.new
  end

  def teardown
    $stderr = @stderr_was
    super
  end

  def refuse_mail_to(user_id, retryable: false, klass: "InvalidAddress")
    @host.on("mail", "send", ->(p) { p[:user_id] == user_id },
             SimbiWorker::HostError.new(klass:, message: "to_email refused", retryable:))
  end

  # -- 1. fan-out -----------------------------------------------------------------------

  def test_a_permanent_error_for_one_recipient_does_not_stop_the_others
    users[7]["email"] = ""
    refuse_mail_to(7)
    value, skipped = run_worker(NotifyCommentEmailWorker, 60)

    assert_nil skipped
    assert_equal [8], value["sent"]
    assert_equal({ "7" => { "error" => "InvalidAddress", "message" => "to_email refused" } },
                 value["failed"])
    assert_equal [7, 8], @host.mail_recipients # 7 tried, 8 sent
    assert_equal ["comment:60:8"], @host.claims # 7's claim given back
  end

  def test_every_recipient_failing_permanently_fails_the_job_permanently
    refuse_mail_to(7)
    @host.on("mail", "send", ->(p) { p[:user_id] == 8 },
             SimbiWorker::PermanentError.new("bad address"))
    error = assert_raises(SimbiWorker::PermanentError) { run_worker(NotifyCommentEmailWorker, 60) }
    assert_equal "comment 60: every recipient failed: user 7: to_email refused; " \
                 "user 8: bad address", error.message
  end

  def test_a_retryable_error_is_raised_after_the_others_were_emailed
    refuse_mail_to(7, retryable: true, klass: "ProviderUnavailable")
    error = assert_raises(SimbiWorker::HostError) { run_worker(NotifyCommentEmailWorker, 60) }
    assert_equal "ProviderUnavailable", error.klass
    assert_equal ["comment:60:8"], @host.claims

    @host.on("mail", "send", ->(p) { p[:user_id] == 7 }, { "message_id" => "m" })
    value, = run_worker(NotifyCommentEmailWorker, 60)
    assert_equal [7], value["sent"]
    assert_equal({ "8" => "user 8 was already emailed about comment 60" }, value["skipped"])
    assert_equal [7, 8, 7], @host.mail_recipients # 8 emailed once
  end

  # -- 2. claims are leases -------------------------------------------------------------

  def test_a_claim_of_a_killed_run_is_taken_over_after_the_lease
    @host.stale_claim("intro:7:first", 121) # claimed, then SIGKILL: no release, no sent_at
    value, skipped = run_worker(SendIntroWorker, 7, "first")

    assert_nil skipped
    assert_equal "first", value["step"]
    assert_equal [7], @host.mail_recipients
    refute_nil @host.claim_rows["intro:7:first"]["sent_at"]
    cutoff = @host.executed(/SET created_at/).first[:params][:cutoff]
    assert_match(/\A\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00\z/, cutoff)
  end

  def test_a_fresh_claim_of_another_run_is_retryable_not_skipped
    @host.stale_claim("intro:7:first", 5)
    error = assert_raises(SimbiWorker::RetryableError) { run_worker(SendIntroWorker, 7, "first") }
    assert_equal "intro:7:first is being sent by another run; retrying", error.message
    refute_kind_of SimbiWorker::PermanentError, error
    assert_empty @host.mails
  end

  def test_a_sent_claim_is_skipped_and_a_second_run_sends_nothing
    run_worker(SendIntroWorker, 7, "first")
    _, skipped = run_worker(SendIntroWorker, 7, "first")
    assert_equal "intro step first was already sent to user 7", skipped
    assert_equal 1, @host.mails.size
  end

  # -- 4. ids ---------------------------------------------------------------------------

  def test_an_id_beyond_bigint_is_permanent_and_named
    assert_permanent "comment_id must be a positive Integer id no larger than 2**63-1, " \
                     "got #{2**63}", NotifyCommentEmailWorker, 2**63
    assert_permanent "user_id must be a positive Integer id no larger than 2**63-1, " \
                     "got #{2**70}", SendIntroWorker, 2**70, "first"
  end

  # -- 5. hostile names -----------------------------------------------------------------

  def test_blank_first_names_greet_there_and_subjects_fall_back
    users[7]["first_name"] = " \t "
    run_worker(SendIntroWorker, 7, "second")
    mail = mail_to(7)
    assert_equal "Find something you need on Simbi", mail[:subject]
    assert mail[:text].start_with?("Hi there,\n"), mail[:text]
    assert_includes mail[:html], "<p>Hi there,</p>"
  end

  def test_names_and_titles_are_flattened_and_subjects_capped
    @comment["author_first_name"] = "Li\r\nBcc: x@evil.test\u0000"
    @comment["service_title"] = "P" * 300
    run_worker(NotifyCommentEmailWorker, 60)
    subject = mail_to(7)[:subject]
    assert subject.start_with?("Li Bcc: x@evil.test commented on PPP"), subject
    assert_equal 200, subject.length
    assert subject.end_with?("…")
    refute_match(/[[:cntrl:]]/, subject)
  end
end

# The lease on the real schema (sent_at column, CURRENT_TIMESTAMP against the cutoff).
class TestEmailLeaseDatabase < Minitest::Test
  include EmailJobs
  include EmailDatabaseCase

  def claim_row
    @db.query("SELECT created_at, sent_at FROM notifications_sent WHERE dedupe_key = :k",
              { k: "intro:7:first" })["rows"].first
  end

  def test_kill_then_retry_within_the_lease_then_after_it_sends_once
    @db.insert("notifications_sent", { user_id: 7, kind: "intro", dedupe_key: "intro:7:first" })

    assert_raises(SimbiWorker::RetryableError) { run_worker(SendIntroWorker, 7, "first") }
    assert_empty @host.mails

    @db.execute("UPDATE notifications_sent SET created_at = :old", { old: "2000-01-01 00:00:00" })
    value, skipped = run_worker(SendIntroWorker, 7, "first")
    assert_nil skipped
    assert_equal "first", value["step"]
    refute_nil claim_row["sent_at"]

    _, skipped = run_worker(SendIntroWorker, 7, "first")
    assert_equal "intro step first was already sent to user 7", skipped
    assert_equal 1, @host.mails.size
  end
end
# rubocop:enable Metrics/AbcSize

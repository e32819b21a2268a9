# frozen_string_literal: true

require "minitest/autorun"
require "stringio"
require_relative "../workers/email_worker"
require_relative "support/email_jobs"

# Each test tells one story and checks every field it cares about (tests are exempt
# from the length metrics in .rubocop.yml for the same reason).
# rubocop:disable Metrics/AbcSize

class TestEmailNotifyComment < Minitest::Test
  include EmailJobs

  def setup
    super
    # Service 5 "Piano & voice" belongs to Ada (7); Linus (9) comments as comment 60.
    @comment = { "id" => 60, "service_id" => 5, "user_id" => 9, "body" => "Is <Tuesday> ok?",
                 "author_first_name" => "Linus", "owner_id" => 7,
                 "service_title" => "Piano & voice" }
    @earlier = []
    @host.rows(/FROM comments c/) { |p| p[:params][:id] == 60 ? [@comment] : [] }
    @host.rows(/SELECT user_id, MIN\(id\)/) { @earlier }
    stderr_was = $stderr
    @log = $stderr = StringIO.new
    @stderr_was = stderr_was
  end

  def teardown
    $stderr = @stderr_was
    super
  end

  def commenters(*ids)
    @earlier = ids.each_with_index.map { |id, i| { "user_id" => id, "first_comment_id" => 50 + i } }
  end

  def test_emails_the_owner_with_the_excerpt_and_a_link_to_the_comment
    value, skipped = run_worker(NotifyCommentEmailWorker, 60)

    assert_nil skipped
    assert_equal({ "sent" => [7], "skipped" => {} }, value)
    mail = mail_to(7)
    assert_equal "Linus commented on Piano & voice", mail[:subject]
    assert_includes mail[:text],
                    %(Linus commented on your service "Piano & voice":\n\nIs <Tuesday> ok?\n)
    assert_includes mail[:text], "See the conversation: https://simbi.example/services/5#comment-60\n"
    assert_includes mail[:html], "<strong>Piano &amp; voice</strong>"
    assert_includes mail[:html], "Is &lt;Tuesday&gt; ok?</blockquote>"
    assert_includes mail[:html], %(<a href="https://simbi.example/services/5#comment-60">)
    assert_unsubscribe_link(mail, "comments")
  end

  def test_earlier_commenters_are_emailed_too_each_once_and_never_the_author
    commenters(8, 9, 7, 8)

    value, = run_worker(NotifyCommentEmailWorker, 60)
    assert_equal({ "sent" => [7, 8], "skipped" => {} }, value)
    assert_equal [7, 8], @host.mail_recipients
    assert_equal 2, @host.executed(/INSERT INTO notifications_sent/).size
    assert_equal "Linus also commented on Piano & voice", mail_to(8)[:subject]
    assert_includes mail_to(8)[:text], %(Linus also commented on "Piano & voice":)
  end

  def test_asks_for_earlier_comments_of_the_same_service_only
    run_worker(NotifyCommentEmailWorker, 60)

    query = @host.params_of("db", "query").find { |p| p[:sql].include?("MIN(id)") }
    assert_equal({ service_id: 5, comment_id: 60 }, query[:params])
  end

  def test_an_owner_commenting_on_their_own_service_is_not_emailed
    @comment.merge!("user_id" => 7, "author_first_name" => "Ada")
    commenters(8)

    value, = run_worker(NotifyCommentEmailWorker, 60)
    assert_equal [8], value["sent"]
    assert_equal "Ada also commented on Piano & voice", mail_to(8)[:subject]
  end

  def test_deleted_and_opted_out_recipients_are_skipped_and_the_rest_emailed
    commenters(8, 9)
    delete_user(7)
    opt_out(8, "comments")
    @earlier << { "user_id" => 10, "first_comment_id" => 59 }
    users[10] = USERS[9].merge("id" => 10, "first_name" => "Ken", "email" => "ken@example.com")

    value, = run_worker(NotifyCommentEmailWorker, 60)
    assert_equal({ "sent" => [10], "skipped" => { "7" => "user 7 is deleted",
                                                  "8" => "user 8 opted out of comments emails" } },
                 value)
    assert_includes @log.string, "skip recipient: user 8 opted out of comments emails"
  end

  def test_nobody_left_to_email_is_a_skip_with_the_reasons
    opt_out(7, "comments")

    assert_skipped "comment 60: nobody to email (user 7 opted out of comments emails)",
                   NotifyCommentEmailWorker, 60
  end

  def test_a_second_run_emails_nobody_again
    commenters(8)
    run_worker(NotifyCommentEmailWorker, 60)
    assert_equal %w[comment:60:7 comment:60:8], @host.claims

    _, skipped = run_worker(NotifyCommentEmailWorker, 60)
    assert_equal "comment 60: nobody to email (user 7 was already emailed about comment 60; " \
                 "user 8 was already emailed about comment 60)", skipped
    assert_equal 2, @host.mails.size
  end

  def test_a_comment_that_is_gone_is_a_skip_not_a_failure
    assert_skipped "comment 61 is gone", NotifyCommentEmailWorker, 61
  end

  def test_a_bad_id_is_permanent
    assert_permanent "comment_id must be a positive Integer id, got 0", NotifyCommentEmailWorker, 0
  end
end
# rubocop:enable Metrics/AbcSize

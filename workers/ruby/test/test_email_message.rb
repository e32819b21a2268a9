# frozen_string_literal: true

require "minitest/autorun"
require_relative "../workers/email_worker"
require_relative "support/email_jobs"

# Each test tells one story and checks every field it cares about (tests are exempt
# from the length metrics in .rubocop.yml for the same reason).
# rubocop:disable Metrics/AbcSize

class TestEmailNotifyMessage < Minitest::Test
  include EmailJobs

  BODY = "<b>hi</b> & bye"

  def setup
    super
    @message = { "id" => 40, "talk_id" => 3, "sender_id" => 8, "body" => BODY,
                 "sender_first_name" => "Grace" }
    @participant = { "last_read_message_id" => 39 }
    @host.rows(/FROM messages m/) { |p| p[:params][:id] == 40 ? [@message] : [] }
    @host.rows(/FROM talk_participants/) do |p|
      p[:params] == { talk_id: 3, user_id: 7 } && @participant ? [@participant] : []
    end
  end

  def test_emails_the_recipient_with_the_sender_the_escaped_excerpt_and_the_talk_link
    value, skipped = run_worker(NotifyMessageWorker, 7, 3, 40)

    assert_nil skipped
    assert_equal({ "message_id" => "mail-1", "delivered" => "outbox" }, value)
    mail = mail_to(7)
    assert_equal ["ada@example.com", "Ada Lovelace", "Grace sent you a message", "messages"],
                 mail.values_at(:to_email, :to_name, :subject, :category)
    assert_includes mail[:text], "Hi Ada,\n"
    assert_includes mail[:text], "Grace sent you a message on Simbi:\n\n<b>hi</b> & bye\n"
    assert_includes mail[:text], "Read it and reply: https://simbi.example/talks/3\n"
    assert_includes mail[:html], "&lt;b&gt;hi&lt;/b&gt; &amp; bye</blockquote>"
    refute_includes mail[:html], "<b>hi</b>"
    assert_includes mail[:html], %(<a href="https://simbi.example/talks/3">)
    assert_unsubscribe_link(mail, "messages")
  end

  def test_asks_the_host_for_the_unsubscribe_link_of_the_recipient_and_category
    run_worker(NotifyMessageWorker, 7, 3, 40)

    assert_equal [{ user_id: 7, category: "messages" }], @host.params_of("mail", "unsubscribe_url")
  end

  def test_a_long_body_becomes_a_squeezed_excerpt_of_at_most_200_characters
    @message["body"] = "Hello   there\n\n#{'lorem ipsum ' * 30}"
    run_worker(NotifyMessageWorker, 7, 3, 40)

    line = mail_to(7)[:text].lines[4].chomp
    assert line.start_with?("Hello there lorem ipsum"), line
    assert line.end_with?("…"), line
    assert_operator line.length, :<=, 200
    refute_match(/\s…\z/, line)
  end

  def test_a_missing_user_is_skipped
    users.delete(7)

    assert_skipped "user 7 does not exist", NotifyMessageWorker, 7, 3, 40
  end

  def test_a_deleted_user_is_skipped
    delete_user(7)

    assert_skipped "user 7 is deleted", NotifyMessageWorker, 7, 3, 40
  end

  def test_a_user_who_opted_out_of_message_emails_is_skipped
    opt_out(7, "messages")

    assert_skipped "user 7 opted out of messages emails", NotifyMessageWorker, 7, 3, 40
  end

  def test_an_opt_out_of_another_category_does_not_stop_message_emails
    opt_out(7, "comments")
    run_worker(NotifyMessageWorker, 7, 3, 40)

    assert_equal "Grace sent you a message", mail_to(7)[:subject]
  end

  def test_a_message_read_already_is_skipped
    @participant["last_read_message_id"] = 40

    assert_skipped "user 7 already read message 40 (read up to 40)", NotifyMessageWorker, 7, 3, 40
  end

  def test_a_later_message_read_counts_as_read
    @participant["last_read_message_id"] = 41

    assert_skipped "user 7 already read message 40 (read up to 41)", NotifyMessageWorker, 7, 3, 40
  end

  def test_a_participant_who_never_read_anything_gets_the_email
    @participant["last_read_message_id"] = nil
    run_worker(NotifyMessageWorker, 7, 3, 40)

    mail_to(7)
  end

  def test_someone_who_is_not_in_the_talk_is_skipped
    @participant = nil

    assert_skipped "user 7 is not a participant of talk 3", NotifyMessageWorker, 7, 3, 40
  end

  def test_the_sender_is_never_emailed_about_their_own_message
    @host.rows(/FROM talk_participants/, [{ "last_read_message_id" => nil }])

    assert_skipped "user 8 sent message 40 themselves", NotifyMessageWorker, 8, 3, 40
  end

  def test_a_missing_message_is_permanent
    assert_permanent "message 41 does not exist", NotifyMessageWorker, 7, 3, 41
  end

  def test_a_message_of_another_talk_is_permanent
    assert_permanent "message 40 belongs to talk 3, not to talk 4", NotifyMessageWorker, 7, 4, 40
  end

  def test_ids_that_are_not_positive_integers_are_permanent_before_any_host_call
    assert_permanent 'talk_id must be a positive Integer id, got "3"', NotifyMessageWorker, 7, "3",
                     40
    assert_permanent "user_id must be a positive Integer id, got nil", NotifyMessageWorker, nil, 3,
                     40
    assert_empty @host.calls
  end

  def test_a_mail_provider_error_propagates_with_its_retryability
    unavailable = SimbiWorker::HostError.new(klass: "ProviderUnavailable", message: "503",
                                             retryable: true)
    @host.on("mail", "send", nil, unavailable)

    error = assert_raises(SimbiWorker::HostError) { run_worker(NotifyMessageWorker, 7, 3, 40) }
    assert_same unavailable, error
  end
end
# rubocop:enable Metrics/AbcSize

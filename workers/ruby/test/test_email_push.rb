# frozen_string_literal: true

require "minitest/autorun"
require_relative "../workers/email_push_workers"
require_relative "support/email_jobs"

# Each test tells one story and checks every field it cares about (tests are exempt
# from the length metrics in .rubocop.yml for the same reason).
# rubocop:disable Metrics/AbcSize

# NotifyComplimentWorker and NotifyFavorWorker: a push through SendPushWorker and an email.
class TestEmailPushAndEmail < Minitest::Test
  include EmailJobs

  def setup
    super
    @compliment = { "id" => 12, "sender_id" => 8, "receiver_id" => 7,
                    "body" => "Best <piano> teacher & friend", "sender_first_name" => "Grace" }
    @favor = { "id" => 30, "requester_id" => 9, "asked_user_id" => 7, "service_id" => 5,
               "body" => "Could you tune my piano?", "requester_first_name" => "Linus",
               "service_title" => "Piano & voice" }
    @host.rows(/FROM compliments c/) { |p| p[:params][:id] == 12 ? [@compliment] : [] }
    @host.rows(/FROM favors f/) { |p| p[:params][:id] == 30 ? [@favor] : [] }
  end

  def test_a_compliment_enqueues_a_push_and_emails_the_receiver
    value, skipped = run_worker(NotifyComplimentWorker, 12)

    assert_nil skipped
    assert_equal({ "push" => "enqueued", "email" => "sent" }, value)
    push = ["SendPushWorker",
            [7, "compliments", "Grace complimented you: “Best <piano> teacher & friend”",
             { "type" => "compliment", "compliment_id" => "12",
               "url" => "https://simbi.example/compliments/12" }]]
    assert_equal([push], @host.enqueued.map { |job| [job[:worker], job[:args]] })
    assert_nil @host.enqueued.first[:in_seconds]

    mail = mail_to(7)
    assert_equal "Grace complimented you", mail[:subject]
    assert_includes mail[:text],
                    "Grace complimented you on Simbi:\n\nBest <piano> teacher & friend\n"
    assert_includes mail[:html], "Best &lt;piano&gt; teacher &amp; friend</blockquote>"
    assert_includes mail[:html], %(<a href="https://simbi.example/compliments/12">)
    assert_unsubscribe_link(mail, "compliments")
  end

  def test_push_data_values_are_all_strings
    run_worker(NotifyComplimentWorker, 12)

    assert(@host.enqueued.first[:args][3].values.all?(String))
  end

  def test_a_compliment_without_text_reads_well_in_push_and_email
    @compliment["body"] = "   "
    run_worker(NotifyComplimentWorker, 12)

    assert_equal "Grace complimented you", @host.enqueued.first[:args][2]
    assert_includes mail_to(7)[:text], "Grace complimented you on Simbi.\n\nSee it on your profile"
  end

  def test_an_email_opt_out_still_pushes
    opt_out(7, "compliments")

    value, = run_worker(NotifyComplimentWorker, 12)
    assert_equal({ "push" => "enqueued", "email" => "opted out" }, value)
    assert_equal 1, @host.enqueued.size
    assert_empty @host.mails
  end

  def test_a_second_run_pushes_and_emails_nothing
    run_worker(NotifyComplimentWorker, 12)
    _, skipped = run_worker(NotifyComplimentWorker, 12)

    assert_equal "compliment:12: push already enqueued, email already sent", skipped
    assert_equal 1, @host.enqueued.size
    assert_equal 1, @host.mails.size
  end

  def test_a_retry_after_a_failed_email_emails_without_pushing_again
    @host.on("mail", "send", nil, SimbiWorker::HostError.new(klass: "ProviderUnavailable",
                                                             message: "503", retryable: true))
    assert_raises(SimbiWorker::HostError) { run_worker(NotifyComplimentWorker, 12) }
    assert_equal ["compliment:12:push"], @host.claims

    @host.on("mail", "send", nil, { "message_id" => "m", "delivered" => "outbox" })
    value, = run_worker(NotifyComplimentWorker, 12)
    assert_equal({ "push" => "already enqueued", "email" => "sent" }, value)
    assert_equal 1, @host.enqueued.size
  end

  def test_a_missing_compliment_is_skipped
    assert_skipped "compliment 13 is gone", NotifyComplimentWorker, 13
    assert_empty @host.enqueued
  end

  def test_a_deleted_receiver_gets_neither_push_nor_email
    delete_user(7)

    assert_skipped "user 7 is deleted", NotifyComplimentWorker, 12
    assert_empty @host.enqueued
  end

  def test_a_favor_pushes_and_emails_the_person_asked
    value, = run_worker(NotifyFavorWorker, 30)

    assert_equal({ "push" => "enqueued", "email" => "sent" }, value)
    data = { "type" => "favor", "favor_id" => "30", "url" => "https://simbi.example/favors/30" }
    assert_equal [7, "favors", "Linus asked you for a favor: “Could you tune my piano?”", data],
                 @host.enqueued.first[:args]
    mail = mail_to(7)
    assert_equal "Linus asked you for a favor", mail[:subject]
    assert_includes mail[:text], %(Linus asked you for a favor with "Piano & voice":\n\n) +
                                 "Could you tune my piano?\n"
    assert_includes mail[:html], "with <strong>Piano &amp; voice</strong>:"
    assert_includes mail[:text], "Help out or answer: https://simbi.example/favors/30\n"
    assert_unsubscribe_link(mail, "favors")
  end

  def test_a_favor_about_no_service_leaves_the_service_out
    @favor.merge!("service_id" => nil, "service_title" => nil, "body" => "")
    run_worker(NotifyFavorWorker, 30)

    text = mail_to(7)[:text]
    assert_includes text, "Linus asked you for a favor:\n\n(no details given)\n"
    assert_equal "Linus asked you for a favor", @host.enqueued.first[:args][2]
  end

  def test_a_favor_to_someone_deleted_or_opted_out
    opt_out(7, "favors")
    value, = run_worker(NotifyFavorWorker, 30)
    assert_equal({ "push" => "enqueued", "email" => "opted out" }, value)

    delete_user(7)
    assert_skipped "user 7 is deleted", NotifyFavorWorker, 30
  end

  def test_a_missing_favor_is_skipped
    assert_skipped "favor 31 is gone", NotifyFavorWorker, 31
  end
end
# rubocop:enable Metrics/AbcSize

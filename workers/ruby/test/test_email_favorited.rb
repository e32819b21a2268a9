# frozen_string_literal: true

require "minitest/autorun"
require_relative "../workers/email_worker"
require_relative "support/email_jobs"

# Each test tells one story and checks every field it cares about (tests are exempt
# from the length metrics in .rubocop.yml for the same reason).
# rubocop:disable Metrics/AbcSize

class TestEmailEngagementFavorited < Minitest::Test
  include EmailJobs

  def setup
    super
    @service = { "id" => 5, "user_id" => 7, "title" => "Piano <lessons>" }
    @host.rows(/FROM services WHERE id = :id/) { |p| p[:params][:id] == 5 ? [@service] : [] }
  end

  def test_tells_the_owner_who_favorited_their_service
    value, skipped = run_worker(SendEngagementFavoritedWorker, 5, 8)

    assert_nil skipped
    assert_equal "mail-1", value["message_id"]
    mail = mail_to(7)
    assert_equal ["ada@example.com", "Grace favorited Piano <lessons>"],
                 mail.values_at(:to_email, :subject)
    assert_includes mail[:text], %(Grace added your service "Piano <lessons>" to their favorites.)
    assert_includes mail[:text], "Your service: https://simbi.example/services/5\n"
    assert_includes mail[:text], "Grace's profile: https://simbi.example/users/8\n"
    assert_includes mail[:html], "<strong>Piano &lt;lessons&gt;</strong>"
    assert_includes mail[:html], %(<a href="https://simbi.example/users/8">)
    assert_unsubscribe_link(mail, "favorites")
  end

  def test_user_text_in_the_subject_and_name_is_kept_on_one_line
    @service["title"] = "Piano\r\nBcc: x@example.com"
    users[7]["last_name"] = "Love\nlace"
    run_worker(SendEngagementFavoritedWorker, 5, 8)

    mail = mail_to(7)
    assert_equal ["Grace favorited Piano Bcc: x@example.com", "Ada Love lace"],
                 mail.values_at(:subject, :to_name)
  end

  def test_a_self_favorite_is_skipped
    assert_skipped "user 7 favorited their own service 5", SendEngagementFavoritedWorker, 5, 7
  end

  def test_a_deleted_owner_is_skipped
    delete_user(7)

    assert_skipped "user 7 is deleted", SendEngagementFavoritedWorker, 5, 8
  end

  def test_an_owner_who_opted_out_of_favorites_emails_is_skipped
    opt_out(7, "favorites")

    assert_skipped "user 7 opted out of favorites emails", SendEngagementFavoritedWorker, 5, 8
  end

  def test_a_fan_who_is_gone_is_skipped
    delete_user(8)

    assert_skipped "the user who favorited service 5 is gone: user 8 is deleted",
                   SendEngagementFavoritedWorker, 5, 8
  end

  def test_a_service_that_is_gone_is_skipped
    assert_skipped "service 6 is gone", SendEngagementFavoritedWorker, 6, 8
  end

  def test_bad_ids_are_permanent
    assert_permanent 'service_id must be a positive Integer id, got "5"',
                     SendEngagementFavoritedWorker, "5", 8
    assert_permanent "user_id must be a positive Integer id, got -8",
                     SendEngagementFavoritedWorker, 5, -8
  end
end
# rubocop:enable Metrics/AbcSize

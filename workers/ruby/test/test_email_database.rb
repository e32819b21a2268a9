# frozen_string_literal: true

require "minitest/autorun"
require "stringio"
require_relative "../workers/email_worker"
require_relative "../workers/email_intro_worker"
require_relative "../workers/email_push_workers"
require_relative "../workers/email_suggestions_worker"
require_relative "support/email_jobs"
require_relative "support/email_database"

# Each test tells one story and checks every field it cares about (tests are exempt
# from the length metrics in .rubocop.yml for the same reason).
# rubocop:disable Metrics/AbcSize

# The workers' SQL on the real schema through the real db service (SQLite by default; set
# SIMBI_RUBY_TEST_DATABASE_URL to a throwaway PostgreSQL to run it there). Skipped when
# the project's Python is not installed, except in CI, where that is a failure.
class TestEmailDatabase < Minitest::Test
  include EmailJobs
  include EmailDatabaseCase

  DAY_SECONDS = 86_400

  # Service `id` of `user_id`, priced `id` Simbi; `columns` override status and ratings.
  def service(id, user_id, category, **columns)
    @db.insert("services", { id:, user_id:, title: "Service #{id}", category:, price: id,
                             status: "active", rating_average: nil, rating_count: 0, **columns })
  end

  def days_ago(days)
    (Time.now.utc - (days * DAY_SECONDS)).strftime("%Y-%m-%d %H:%M:%S")
  end

  def suggested(user_id, service_id, days_ago)
    @db.insert("suggestion_history", { user_id:, service_id:, suggested_at: days_ago(days_ago) })
  end

  def suggested_ids(value)
    value && value["suggested"]
  end

  # Ada (7) offers music; Grace (8) and Linus (9) offer services in several categories.
  def seed_marketplace
    service(1, 7, "music")
    service(10, 8, "music", rating_average: 4.9, rating_count: 3)
    service(11, 8, "music", rating_average: 4.5, rating_count: 10)
    service(12, 9, "music", rating_average: 4.5, rating_count: 20)
    service(13, 9, "music", rating_average: nil)
    service(14, 8, "music", rating_average: 3.0, rating_count: 1)
    service(15, 9, "music", rating_average: 2.0, rating_count: 1)
    service(16, 8, "music", rating_average: 1.0, rating_count: 1)
    service(17, 8, "music", rating_average: 5.0, rating_count: 50, status: "paused")
    service(18, 7, "music", rating_average: 5.0, rating_count: 50)
    service(20, 8, "cooking", rating_average: 5.0, rating_count: 99)
  end

  def test_suggests_the_five_best_rated_music_services_that_are_not_her_own
    seed_marketplace

    value, skipped = run_worker(SendSuggestedServicesWorker, 7)
    assert_nil skipped
    # 4.9; 4.5 with 20 ratings before 4.5 with 10; 3.0; 2.0. Unrated and 1.0 are left
    # over, paused 17, her own 18 and cooking 20 never qualify.
    assert_equal [10, 12, 11, 14, 15], suggested_ids(value)
    assert_equal 1, @host.mails.size
  end

  def test_records_the_suggestions_and_the_next_run_suggests_the_rest_then_nothing
    seed_marketplace
    run_worker(SendSuggestedServicesWorker, 7)

    history = @db.query("SELECT user_id, service_id FROM suggestion_history ORDER BY service_id")
    assert_equal([10, 11, 12, 14, 15], history["rows"].map { |row| row["service_id"] })
    assert_equal [16, 13], suggested_ids(run_worker(SendSuggestedServicesWorker, 7).first)
    _, skipped = run_worker(SendSuggestedServicesWorker, 7)
    assert_equal "nothing to suggest to user 7", skipped
  end

  def test_a_suggestion_older_than_30_days_may_come_again
    seed_marketplace
    suggested(7, 10, 31)
    suggested(7, 12, 29)
    suggested(8, 11, 1) # another user's history does not count

    value, = run_worker(SendSuggestedServicesWorker, 7)
    assert_equal [10, 11, 14, 15, 16], suggested_ids(value)
  end

  def test_categories_of_favorited_services_count_and_favorites_are_not_suggested_again
    service(20, 8, "cooking", rating_average: 4.0, rating_count: 1)
    service(21, 9, "cooking", rating_average: 3.0, rating_count: 1)
    service(22, 9, "gardening", rating_average: 5.0, rating_count: 1)
    @db.insert("favorites", { user_id: 7, service_id: 20 })

    value, = run_worker(SendSuggestedServicesWorker, 7)
    assert_equal [21], suggested_ids(value)
  end

  def test_services_of_deleted_owners_are_not_suggested
    seed_marketplace
    @db.execute("UPDATE users SET deleted_at = :at WHERE id = 9", { at: days_ago(1) })

    value, = run_worker(SendSuggestedServicesWorker, 7)
    assert_equal [10, 11, 14, 16], suggested_ids(value)
  end

  def test_a_user_without_services_or_favorites_gets_nothing
    seed_marketplace
    @db.execute("DELETE FROM services WHERE user_id = 7")

    assert_skipped "nothing to suggest to user 7", SendSuggestedServicesWorker, 7
  end

  def test_an_intro_step_is_claimed_once_in_notifications_sent
    run_worker(SendIntroWorker, 7, "first")
    _, skipped = run_worker(SendIntroWorker, 7, "first")

    assert_equal "intro step first was already sent to user 7", skipped
    assert_equal 1, @host.mails.size
    assert_equal 1, @host.enqueued.size
    rows = @db.query("SELECT user_id, kind, dedupe_key FROM notifications_sent ORDER BY id")["rows"]
    assert_equal [{ "user_id" => 7, "kind" => "intro", "dedupe_key" => "intro:7:first" },
                  { "user_id" => 7, "kind" => "intro_scheduled",
                    "dedupe_key" => "intro:7:second:scheduled" }], rows
  end

  def test_a_stored_opt_out_is_honoured_and_an_explicit_opt_in_is_not_an_opt_out
    @db.insert("notification_preferences", { user_id: 7, channel: "email", category: "intro",
                                             enabled: false })
    @db.insert("notification_preferences", { user_id: 8, channel: "email", category: "intro",
                                             enabled: true })
    @db.insert("notification_preferences", { user_id: 9, channel: "push", category: "intro",
                                             enabled: false })

    assert_skipped "user 7 opted out of intro emails", SendIntroWorker, 7, "first"
    assert_nil run_worker(SendIntroWorker, 8, "first").last
    assert_nil run_worker(SendIntroWorker, 9, "first").last
    assert_equal [8, 9], @host.mail_recipients
  end

  def test_message_emails_follow_the_read_marker
    service(1, 7, "music")
    @db.insert("talks", { id: 3, service_id: 1 })
    @db.insert("talks", { id: 4, service_id: 1 })
    @db.insert("talk_participants", { talk_id: 3, user_id: 7, last_read_message_id: nil })
    @db.insert("talk_participants", { talk_id: 3, user_id: 8, last_read_message_id: 41 })
    @db.insert("messages", { id: 40, talk_id: 3, sender_id: 9, body: "first <b>" })
    @db.insert("messages", { id: 41, talk_id: 3, sender_id: 9, body: "second" })

    assert_nil run_worker(NotifyMessageWorker, 7, 3, 40).last
    assert_equal "Linus sent you a message", mail_to(7)[:subject]
    assert_equal "user 8 already read message 40 (read up to 41)",
                 run_worker(NotifyMessageWorker, 8, 3, 40).last
    error = assert_raises(SimbiWorker::PermanentError) { run_worker(NotifyMessageWorker, 7, 4, 40) }
    assert_equal "message 40 belongs to talk 3, not to talk 4", error.message
  end

  def test_comment_emails_reach_the_owner_and_earlier_commenters_each_once
    service(5, 7, "music")
    users_ken = USERS[9].merge("id" => 10, "first_name" => "Ken", "email" => "ken@example.com")
    @db.insert("users", users_ken.except("deleted_at"))
    [[50, 8], [51, 9], [52, 8], [53, 7], [54, 10]].each do |id, user_id|
      @db.insert("comments", { id:, service_id: 5, user_id:, body: "comment #{id}" })
    end
    service(6, 10, "music")
    @db.insert("comments", { id: 49, service_id: 6, user_id: 10, body: "elsewhere" })

    value, = run_worker(NotifyCommentEmailWorker, 53)
    assert_equal({ "sent" => [8, 9], "skipped" => {} }, value)
    assert_equal [8, 9], @host.mail_recipients
    assert_equal ["Ada also commented on Service 5"], @host.mail_subjects.uniq
  end

  def test_compliment_favor_and_favorited_queries_run_on_the_schema
    service(5, 7, "music")
    @db.insert("compliments", { id: 12, sender_id: 8, receiver_id: 7, body: "Great" })
    @db.insert("favors", { id: 30, requester_id: 9, asked_user_id: 7, service_id: 5, body: "Help" })
    @db.insert("favors", { id: 31, requester_id: 9, asked_user_id: 8, service_id: nil, body: "" })

    assert_equal "sent", run_worker(NotifyComplimentWorker, 12).first["email"]
    assert_equal "sent", run_worker(NotifyFavorWorker, 30).first["email"]
    assert_equal "sent", run_worker(NotifyFavorWorker, 31).first["email"]
    assert_equal "compliment:12: push already enqueued, email already sent",
                 run_worker(NotifyComplimentWorker, 12).last
    assert_nil run_worker(SendEngagementFavoritedWorker, 5, 8).last
    assert_equal ["Grace complimented you", "Linus asked you for a favor",
                  "Linus asked you for a favor", "Grace favorited Service 5"],
                 @host.mail_subjects
  end
end
# rubocop:enable Metrics/AbcSize

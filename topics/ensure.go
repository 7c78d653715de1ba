package topics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/IBM/sarama"
)

// ErrMismatch is wrapped when an existing topic does not match its Spec.
var ErrMismatch = errors.New("topics: existing topic does not match its declaration")

// Admin is the part of sarama.ClusterAdmin that Ensure needs.
type Admin interface {
	ListTopics() (map[string]sarama.TopicDetail, error)
	CreateTopic(topic string, detail *sarama.TopicDetail, validateOnly bool) error
}

// Ensure creates the topics of specs that do not exist and checks the ones
// that do. A topic whose partition count or cleanup policy differs from its
// Spec is an error wrapping ErrMismatch that names the topic and the
// setting; a different retention is only logged, as operators may tune it.
func Ensure(ctx context.Context, admin Admin, cfg Config, specs []Spec, log *slog.Logger) error {
	cfg = cfg.withDefaults()
	existing, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("topics: list topics: %w", err)
	}
	created := false
	for _, s := range specs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, ok := existing[s.Name]; ok {
			continue
		}
		err := admin.CreateTopic(s.Name, &sarama.TopicDetail{
			NumPartitions:     s.Partitions,
			ReplicationFactor: cfg.ReplicationFactor,
			ConfigEntries:     s.configs(),
		}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fmt.Errorf("topics: create %q: %w", s.Name, err)
		}
		if log != nil {
			log.Info("created topic", "topic", s.Name, "partitions", s.Partitions, "cleanup.policy", s.Policy)
		}
		created = true
	}
	if created {
		if existing, err = admin.ListTopics(); err != nil {
			return fmt.Errorf("topics: list topics: %w", err)
		}
	}
	var errs []error
	for _, s := range specs {
		d, ok := existing[s.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("topics: %q was created but is not listed", s.Name))
			continue
		}
		errs = append(errs, s.check(d, log))
	}
	return errors.Join(errs...)
}

func (s Spec) configs() map[string]*string {
	policy := s.Policy
	c := map[string]*string{"cleanup.policy": &policy}
	if s.Policy == PolicyDelete && s.Retention > 0 {
		ms := strconv.FormatInt(s.Retention.Milliseconds(), 10)
		c["retention.ms"] = &ms
	}
	return c
}

func (s Spec) check(d sarama.TopicDetail, log *slog.Logger) error {
	if d.NumPartitions != s.Partitions {
		return fmt.Errorf("%w: topic %q has %d partitions, declared %d (goka co-partitions a group's topics, so all must have the same count)",
			ErrMismatch, s.Name, d.NumPartitions, s.Partitions)
	}
	policy := PolicyDelete // Kafka's default when the topic sets none
	if v := d.ConfigEntries["cleanup.policy"]; v != nil {
		policy = *v
	}
	if policy != s.Policy {
		return fmt.Errorf("%w: topic %q has cleanup.policy=%s, declared %s", ErrMismatch, s.Name, policy, s.Policy)
	}
	if s.Policy == PolicyDelete && log != nil {
		if v := d.ConfigEntries["retention.ms"]; v != nil {
			if ms, err := strconv.ParseInt(*v, 10, 64); err == nil && time.Duration(ms)*time.Millisecond != s.Retention {
				log.Warn("topic retention differs from livetab's default", "topic", s.Name,
					"retention", time.Duration(ms)*time.Millisecond, "declared", s.Retention)
			}
		}
	}
	return nil
}

// EnsureAll connects to k's brokers and ensures every topic of the
// catalog.
func EnsureAll(ctx context.Context, k Kafka) error {
	admin, err := k.NewClusterAdmin()
	if err != nil {
		return err
	}
	defer admin.Close()
	return Ensure(ctx, admin, k.Topics, Catalog(k.Topics), k.Logger)
}

// Command webhookload drives a webhook endpoint the way Stripe does under a
// burst: -c concurrent senders for -d, each posting a distinct, freshly
// signed event (Stripe-Signature with -secret, Stripe's scheme), and prints
// one JSON line: events sent, accepted (2xx), events/s, and latency
// percentiles. Every event has its own ID, so none is a duplicate: each one
// is verified, stored and queued. bench/wrk-webhook.sh runs it against the
// API and against a bare handler that only reads the body.
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "webhookload:", err)
		os.Exit(1)
	}
}

type result struct {
	Target    string  `json:"target"`
	Sent      int64   `json:"sent"`
	Accepted  int64   `json:"accepted_2xx"`
	Other     int64   `json:"other"`
	PerSecond float64 `json:"events_per_s"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	BodyBytes int     `json:"body_bytes"`
}

func run() error {
	url := flag.String("url", "", "the webhook URL")
	secret := flag.String("secret", "", "the signing secret (whsec_...)")
	conc := flag.Int("c", 32, "concurrent senders")
	dur := flag.Duration("d", 10*time.Second, "how long to send")
	prefix := flag.String("run", strconv.FormatInt(time.Now().UnixNano(), 36), "makes event IDs unique across runs")
	flag.Parse()
	if *url == "" || *secret == "" {
		return fmt.Errorf("-url and -secret are required")
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *conc}}
	var (
		seq, ok, other atomic.Int64
		mu             sync.Mutex
		lat            []float64
		wg             sync.WaitGroup
	)
	size := len(event(*prefix, 0))
	end := time.Now().Add(*dur)
	start := time.Now()
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []float64
			for time.Now().Before(end) {
				n := seq.Add(1)
				body := event(*prefix, n)
				req, _ := http.NewRequest(http.MethodPost, *url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Stripe-Signature", sign(body, *secret, time.Now()))
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					other.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mine = append(mine, float64(time.Since(t0).Microseconds())/1000)
				if resp.StatusCode/100 == 2 {
					ok.Add(1)
				} else {
					other.Add(1)
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	wall := time.Since(start).Seconds()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	r := result{Target: *url, Sent: seq.Load(), Accepted: ok.Load(), Other: other.Load(),
		PerSecond: float64(ok.Load()) / wall, P50ms: pct(0.50), P99ms: pct(0.99), BodyBytes: size}
	if len(lat) > 0 {
		r.MaxMs = lat[len(lat)-1]
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// sign is Stripe's scheme: v1 = HMAC-SHA256(secret, "<t>.<body>").
func sign(body []byte, secret string, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// event is an invoice.paid event of API version 2023-10-16, shaped and
// sized like a real one (about 1.8 KB), with a unique ID.
func event(prefix string, n int64) []byte {
	id := fmt.Sprintf("%s%06d", prefix, n)
	now := time.Now().Unix()
	return []byte(fmt.Sprintf(`{"id":"evt_bench_%[1]s","object":"event","api_version":"2023-10-16","created":%[2]d,"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},"type":"invoice.paid","data":{"object":{"id":"in_bench_%[1]s","object":"invoice","account_country":"US","account_name":"Keel Bench","amount_due":2900,"amount_paid":2900,"amount_remaining":0,"attempt_count":1,"attempted":true,"billing_reason":"subscription_cycle","collection_method":"charge_automatically","created":%[2]d,"currency":"usd","customer":"cus_bench_unknown","customer_email":"owner@example.com","customer_name":"Bench Org","hosted_invoice_url":"https://invoice.stripe.com/i/acct_bench/test_%[1]s","invoice_pdf":"https://pay.stripe.com/invoice/acct_bench/test_%[1]s/pdf","lines":{"object":"list","data":[{"id":"il_bench_%[1]s","object":"line_item","amount":2900,"currency":"usd","description":"1 × Pro (at $29.00 / month)","period":{"end":%[3]d,"start":%[2]d},"price":{"id":"price_keel_pro_monthly","object":"price","active":true,"billing_scheme":"per_unit","currency":"usd","product":"prod_bench","recurring":{"interval":"month","interval_count":1,"usage_type":"licensed"},"type":"recurring","unit_amount":2900},"proration":false,"quantity":1,"subscription":"sub_bench_%[1]s","type":"subscription"}],"has_more":false,"total_count":1,"url":"/v1/invoices/in_bench_%[1]s/lines"},"livemode":false,"number":"BENCH-%[1]s","paid":true,"period_end":%[2]d,"period_start":%[2]d,"status":"paid","status_transitions":{"finalized_at":%[2]d,"marked_uncollectible_at":null,"paid_at":%[2]d,"voided_at":null},"subscription":"sub_bench_%[1]s","subtotal":2900,"tax":null,"total":2900}}}`,
		id, now, now+30*24*3600))
}

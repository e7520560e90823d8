namespace JobLog.Worker.Tests;

/// <summary>
/// An hour of ledger history like the demo's (card charges, inventory syncs that retry, invoices that fail, slow
/// reports), with runs, captured output, outbound calls, inbound requests and commands: what the dashboard shows.
/// </summary>
internal static class DemoLedger
{
    public static List<object> History(DateTime now, int seed = 7)
    {
        var random = new Random(seed);
        var rows = new List<object>();
        for (var minute = 59; minute >= 0; minute--)
        {
            var wave = 6 + (int)(5 * (1 + Math.Sin(minute / 7.0)));
            var count = wave + random.Next(0, 5);
            for (var i = 0; i < count; i++)
            {
                var at = now.AddMinutes(-minute - 1).AddSeconds(random.Next(0, 58)).AddMilliseconds(random.Next(0, 999));
                at = new DateTime(at.Ticks - (at.Ticks % TimeSpan.TicksPerMillisecond), DateTimeKind.Utc);
                var roll = random.NextDouble();
                var failBoost = minute is >= 18 and <= 24 ? 0.18 : 0;
                if (roll < 0.55)
                {
                    rows.AddRange(Task("ChargeCard", "charge-card", at, $"CustomerId={1000 + random.Next(9000)}, Amount={random.Next(5, 400)}.{random.Next(10, 99)}",
                        [random.NextDouble() < 0.03 + failBoost ? (TaskRunState.Failed, 0.05 + random.NextDouble() * 0.2, "HttpRequestException: 502 Bad Gateway from psp.example\n   at Demo.ChargeCardConsumer.Consume(ConsumeContext`1 context)") : (TaskRunState.Succeeded, 0.02 + random.NextDouble() * 0.15, null)],
                        random, withCall: true));
                }
                else if (roll < 0.78)
                {
                    var fails = random.NextDouble() < 0.5 ? 2 : 0;
                    var attempts = new List<(TaskRunState, double, string?)>();
                    for (var a = 0; a < fails; a++)
                    {
                        attempts.Add((TaskRunState.Retried, 0.3 + random.NextDouble(), "TimeoutException: Warehouse API timed out\n   at Demo.SyncInventoryConsumer.Consume(ConsumeContext`1 context)"));
                    }

                    attempts.Add(random.NextDouble() < 0.05 + failBoost
                        ? (TaskRunState.Failed, 0.4, "TimeoutException: Warehouse API timed out\n   at Demo.SyncInventoryConsumer.Consume(ConsumeContext`1 context)")
                        : (TaskRunState.Succeeded, 0.2 + random.NextDouble() * 0.8, null));
                    rows.AddRange(Task("SyncInventory", "sync-inventory", at, $"Sku=SKU-{random.Next(1000):000}", attempts, random, withCall: false));
                }
                else if (roll < 0.9)
                {
                    var ok = random.NextDouble() < 0.7 - failBoost;
                    rows.AddRange(Task("SendInvoice", "send-invoice", at, $"InvoiceId={5000 + random.Next(900)}, Email=customer{random.Next(99)}@example.com",
                        ok ? [(TaskRunState.Succeeded, 0.1 + random.NextDouble() * 0.3, null)]
                           : [(TaskRunState.Retried, 0.2, "SmtpException: 550 mailbox unavailable"), (TaskRunState.Retried, 0.2, "SmtpException: 550 mailbox unavailable"), (TaskRunState.Failed, 0.2, "SmtpException: 550 mailbox unavailable\n   at Demo.SendInvoiceConsumer.Consume(ConsumeContext`1 context)")],
                        random, withCall: false));
                }
                else if (roll < 0.915)
                {
                    // Nobody consumed it before its stale deadline: the sweeper expired it.
                    rows.Add(new TaskLog
                    {
                        Id = Guid.NewGuid(), Name = "BuildReport", QueueName = "build-report", Input = $"Title=Monthly report {random.Next(1, 12)}, Seconds=5",
                        DispatchedAt = at.AddMinutes(-2), Stale = at, IsSetAsStale = true, State = TaskState.Expired, Stop = at, Host = "worker-1",
                    });
                }
                else
                {
                    rows.AddRange(Task("BuildReport", "build-report", at, $"Title=Quarterly report {random.Next(1, 5)}, Seconds={random.Next(2, 30)}",
                        [(TaskRunState.Succeeded, 2 + random.NextDouble() * 25, null)], random, withCall: false));
                }
            }
        }

        for (var i = 0; i < 40; i++)
        {
            var at = now.AddMinutes(-random.Next(0, 60)).AddSeconds(-random.Next(0, 59));
            var code = random.NextDouble() < 0.85 ? 200 : random.NextDouble() < 0.6 ? 404 : 500;
            rows.Add(new InputRequestLog
            {
                Id = Guid.NewGuid(), Host = "shop.example:443", Method = i % 3 == 0 ? "POST" : "GET", Path = i % 3 == 0 ? "/api/orders" : $"/api/orders/{random.Next(100, 999)}",
                IsSecure = true, Slug = i % 3 == 0 ? "create-order" : "get-order", RequestTimestamp = at, ResponseTimestamp = at.AddMilliseconds(random.Next(3, 180)),
                ResponseCode = code, Status = code < 400 ? RequestLogStatus.Info : code < 500 ? RequestLogStatus.Warning : RequestLogStatus.Error,
                RequestHeaders = "{\"Accept\":\"application/json\",\"Authorization\":\"[Filtered]\"}", RequestBody = i % 3 == 0 ? "{\"sku\":\"SKU-042\",\"quantity\":2}" : null,
                ResponseBody = code == 200 ? "{\"id\":42,\"status\":\"created\"}" : "{\"error\":\"not found\"}", Ip = $"198.51.100.{random.Next(2, 250)}",
            });
        }

        foreach (var (name, minutesAgo, ok) in new[] { ("migrate", 58, true), ("sweep", 45, true), ("import-catalog", 31, false), ("sweep", 15, true), ("purge", 4, true) })
        {
            var start = now.AddMinutes(-minutesAgo);
            rows.Add(new CommandLog
            {
                Id = Guid.NewGuid(), Name = name, Input = name == "purge" ? "--type tasks --older-than 30d" : name == "import-catalog" ? "--file catalog.csv" : "",
                ExecutedFromCommandLine = true, Start = start, Stop = start.AddSeconds(1.5 + minutesAgo / 10.0), IsSuccessful = ok, ExitCode = ok ? 0 : 1,
                Output = ok ? $"{name}: done" : "importing catalog.csv\nline 212: price is not a number", ErrorMessage = ok ? null : "FormatException: price is not a number", Host = "worker-1",
            });
        }

        return rows;
    }

    private static IEnumerable<object> Task(string name, string queue, DateTime at, string input, IReadOnlyList<(TaskRunState State, double Seconds, string? Error)> runs, Random random, bool withCall)
    {
        var task = new TaskLog
        {
            Id = Guid.NewGuid(), Name = name, QueueName = queue, Input = input, TaskArgs = "[]",
            TaskKwargs = "{" + string.Join(", ", input.Split(", ").Select(p => p.Split('=')).Select(p => $"\"{p[0]}\":\"{p[1]}\"")) + "}",
            DispatchedAt = at, EstimatedTimeOfFirstArrival = at, Host = "worker-1", Release = "1.4.2", SourceAddress = "rabbitmq://localhost/shop-api",
            CorrelationId = Guid.NewGuid(), ConversationId = Guid.NewGuid(), TraceId = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray()),
        };
        var start = at.AddMilliseconds(random.Next(2, 40));
        var list = new List<object> { task };
        for (var i = 0; i < runs.Count; i++)
        {
            var (state, seconds, error) = runs[i];
            var stop = start.AddSeconds(seconds);
            var run = new TaskRunLog
            {
                Id = Guid.NewGuid(), TaskId = task.Id, Name = name, QueueName = queue, ConsumerType = $"Shop.Consumers.{name}Consumer", Input = input,
                Start = start, Stop = stop, State = state, Retries = i, ErrorMessage = error, Host = "worker-1",
                Output = $"info: {name} attempt {i + 1} for {input}" + (error is null ? "\ninfo: done" : "\nwarn: " + error.Split('\n')[0]),
                WaitingTime = (start - at).TotalSeconds, EstimatedTimeOfNextRetry = state == TaskRunState.Retried ? stop.AddMilliseconds(200) : null,
            };
            list.Add(run);
            if (withCall)
            {
                var call = new OutputRequestLog
                {
                    Id = Guid.NewGuid(), Host = "psp.example:443", Method = "POST", Path = "/v1/charges", IsSecure = true, Slug = "psp",
                    RequestTimestamp = start.AddMilliseconds(1), ResponseTimestamp = stop.AddMilliseconds(-1), ResponseCode = state == TaskRunState.Failed ? 502 : 201,
                    Status = state == TaskRunState.Failed ? RequestLogStatus.Error : RequestLogStatus.Info,
                    RequestHeaders = "{\"Authorization\":\"[Filtered]\",\"Content-Type\":\"application/json\"}",
                    RequestBody = "{\"amount\":1299,\"card\":\"[Filtered]\"}", ResponseBody = state == TaskRunState.Failed ? "Bad Gateway" : "{\"id\":\"ch_1\",\"status\":\"succeeded\"}",
                    RelatedObjects = [new OutputRequestRelatedObject { Id = Guid.NewGuid(), TaskRunLogId = run.Id }],
                };
                list.Add(call);
            }

            start = stop.AddMilliseconds(state == TaskRunState.Retried ? 200 + random.Next(0, 300) : 0);
        }

        var last = (TaskRunLog)list.Last(o => o is TaskRunLog);
        task.Start = ((TaskRunLog)list[1]).Start;
        task.Stop = last.Stop;
        task.State = last.State switch
        {
            TaskRunState.Succeeded => TaskState.Succeeded,
            TaskRunState.Failed => TaskState.Failed,
            _ => TaskState.Active,
        };
        return list;
    }
}

using JobLog.Samples.Serilog;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;

namespace JobLog.Samples.Tests.Serilog;

/// <summary>Runs samples/Serilog (a MassTransit application with Serilog's UseSerilog) and asserts its runs' Output.</summary>
public class SerilogSampleTests
{
    private string _directory = null!;

    [SetUp]
    public void SetUp()
    {
        _directory = Path.Combine(Path.GetTempPath(), "joblog-samples", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
    }

    [TearDown]
    public void TearDown()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    [Test]
    public async Task Sample_WithUseSerilog_RecordsEachRunsOwnLines_WithoutEfCoresSql()
    {
        var ledger = $"Data Source={Path.Combine(_directory, "joblog.db")}";
        var printed = new StringWriter();

        var exitCode = await SerilogSample.RunAsync(
            ["--ConnectionStrings:JobLog=" + ledger, $"--ConnectionStrings:Orders=Data Source={Path.Combine(_directory, "orders.db")}"],
            printed,
            CancellationToken.None);

        Assert.That(exitCode, Is.Zero, printed.ToString());
        await using var db = new JobLogDbContext(new DbContextOptionsBuilder<JobLogDbContext>().UseSqlite(ledger).Options);
        var runs = await db.TaskRunLogs.AsNoTracking().Include(r => r.Task).ToListAsync();
        Assert.That(runs, Has.Count.EqualTo(3));
        var byOrder = runs.ToDictionary(r => r.Task!.Input!);

        var saved = byOrder["OrderId=1, Sku=SKU-001, Quantity=2"];
        Assert.That(saved.State, Is.EqualTo(TaskRunState.Succeeded));
        Assert.That(saved.Output, Does.Match(
            @"^\[[^\]]+\] info JobLog\.Samples\.Serilog\.PlaceOrderConsumer: Reserving 2 x SKU-001 for order 1\n" +
            @"\[[^\]]+\] info JobLog\.Samples\.Serilog\.PlaceOrderConsumer: Order 1 saved\n$"),
            "exactly the consumer's two lines: no EF Core SQL, no MassTransit lines");
        Assert.That(byOrder["OrderId=2, Sku=SKU-002, Quantity=1"].Output, Does.Contain("Order 2 saved").And.Not.Contain("order 1"));

        var failed = byOrder["OrderId=3, Sku=SKU-404, Quantity=5"];
        Assert.That(failed.State, Is.EqualTo(TaskRunState.Failed));
        Assert.That(failed.Output, Does.Contain("warn JobLog.Samples.Serilog.PlaceOrderConsumer: The warehouse has no SKU-404"));
        Assert.That(failed.ErrorMessage, Does.Contain("SKU-404 is not stocked"));
        Assert.That(printed.ToString(), Does.Contain("Order 1 saved"), "the sample prints the runs' Output");
    }
}

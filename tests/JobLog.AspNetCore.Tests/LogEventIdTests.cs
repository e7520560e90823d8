using System.Reflection;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests;

/// <summary>A log event id names one event: operators filter and alert on it, so no two events may share one.</summary>
public class LogEventIdTests
{
    [Test]
    public void EveryLogEvent_OfTheLibraries_HasItsOwnId()
    {
        var assemblies = new[]
        {
            typeof(TaskLog).Assembly,
            typeof(JobLogRequestOptions).Assembly,
            typeof(global::MassTransit.TaskLoggingConfigurationExtensions).Assembly,
        };
        var events = assemblies
            .SelectMany(a => a.GetTypes())
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            .Select(m => (Method: m.DeclaringType!.Name + "." + m.Name, Attribute: m.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(e => e.Attribute is not null)
            .ToList();

        Assert.That(events, Has.Count.GreaterThan(20), "the scan finds the libraries' log events");
        var shared = events.GroupBy(e => e.Attribute!.EventId)
            .Where(g => g.Count() > 1)
            .Select(g => g.Key + ": " + string.Join(", ", g.Select(e => e.Method)))
            .ToList();
        Assert.That(shared, Is.Empty);
    }
}

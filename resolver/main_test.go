package resolver

import (
	"testing"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

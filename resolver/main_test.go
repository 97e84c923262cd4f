package resolver

import (
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	testenv.Main(m)
}
